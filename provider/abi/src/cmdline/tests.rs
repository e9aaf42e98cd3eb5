use proptest::prelude::*;

use super::*;

fn launch() -> Launch {
    Launch::new("api", &["--listen".into(), "0.0.0.0:8080".into(), "two words".into()], 8080)
}

fn kernel() -> Vec<String> {
    vec!["slab_nomerge".into(), "init_on_alloc=1".into()]
}

/// Image digests hash this line: it must not change by accident.
#[test]
fn the_line_is_the_one_images_were_built_with() {
    assert_eq!(
        launch().encode(&kernel(), true).unwrap(),
        "console=ttyS0 panic=-1 reboot=t quiet rdinit=/init sdsec.ip=10.0.2.15/24 sdsec.gw=10.0.2.2 slab_nomerge \
         init_on_alloc=1 ro sdsec.app=/app/api sdsec.port=8080 sdsec.listen=80 sdsec.arg=--listen \
         sdsec.arg=0.0.0.0:8080 sdsec.arg=two%20words"
    );
    let plain = Launch::new("a", &[], 80).encode(&[], false).unwrap();
    assert!(plain.ends_with("sdsec.gw=10.0.2.2 sdsec.app=/app/a sdsec.port=80 sdsec.listen=81"), "{plain}");
}

#[test]
fn the_line_round_trips_with_what_the_host_adds() {
    let line = format!("{} tsc_early_khz=2400\n", launch().encode(&kernel(), true).unwrap());
    let back = Launch::decode(&line).unwrap();
    assert_eq!(back, launch());
    assert_eq!(back.app_path(), PathBuf::from("/app/api"));
    assert_eq!((back.network.ip, back.network.gateway), (Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(10, 0, 2, 2)));
}

#[test]
fn an_instance_gets_its_own_address_and_nothing_else_changes() {
    let built = launch().encode(&kernel(), true).unwrap();
    let bridge = Network { ip: Ipv4Addr::new(10, 213, 0, 7), prefix: 24, gateway: Ipv4Addr::new(10, 213, 0, 1) };
    let line = with_network(&format!("{built} -- sdsec.ip=kept"), bridge);
    let back = Launch::decode(&line).unwrap();
    assert_eq!(back, Launch { network: bridge, ..launch() });
    assert_eq!(line.matches("sdsec.ip=").count(), 2, "init's argv after `--` is untouched: {line}");
    assert!(line.ends_with("-- sdsec.ip=kept"), "{line}");
    assert_eq!(with_network(&line, bridge), line, "setting it again changes nothing");
}

#[test]
fn the_snapshot_mark_is_added_once_before_inits_argv_and_read_back() {
    let line = launch().encode(&kernel(), false).unwrap() + " -- sdsec.snapshot=1";
    assert!(!Launch::decode(&line).unwrap().snapshot, "init's argv is not a setting");
    let marked = with_snapshot(&line);
    assert_eq!(with_snapshot(&marked), marked, "marking again changes nothing");
    assert_eq!(marked.matches("sdsec.snapshot=1").count(), 2, "{marked}");
    assert_eq!(Launch::decode(&marked).unwrap(), Launch { snapshot: true, ..launch() });
    let bad = line.replace(" --", " sdsec.snapshot=yes --");
    assert!(matches!(Launch::decode(&bad), Err(CmdlineError::Bad { key: "sdsec.snapshot", .. })), "{bad}");
}

#[test]
fn the_provision_mark_is_its_own_setting_beside_the_snapshots() {
    let line = launch().encode(&kernel(), false).unwrap();
    let provisioned = with_flag(&with_snapshot(&line), Flag::Provision);
    assert_eq!(with_flag(&provisioned, Flag::Provision), provisioned, "marking again changes nothing");
    assert_eq!(Launch::decode(&provisioned).unwrap(), Launch { snapshot: true, provision: true, ..launch() });
    assert!(!Launch::decode(&with_snapshot(&line)).unwrap().provision);
    let bad = line.clone() + " sdsec.provision=0";
    assert!(matches!(Launch::decode(&bad), Err(CmdlineError::Bad { key: "sdsec.provision", .. })), "{bad}");
}

#[test]
fn listen_defaults_to_the_builders_rule() {
    let line = "sdsec.app=/app/a sdsec.port=80 sdsec.ip=10.0.2.15/24 sdsec.gw=10.0.2.2";
    assert_eq!(Launch::decode(line).unwrap().listen, 81);
    let clash = format!("{line} sdsec.listen=80");
    assert!(matches!(Launch::decode(&clash), Err(CmdlineError::Bad { key: "sdsec.listen", .. })));
}

#[test]
fn hostile_lines_name_the_setting() {
    let ok = "sdsec.app=/app/a sdsec.port=8080 sdsec.ip=10.0.2.15/24 sdsec.gw=10.0.2.2";
    Launch::decode(ok).unwrap();
    assert_eq!(Launch::decode("quiet"), Err(CmdlineError::Missing("sdsec.app")));
    assert_eq!(Launch::decode(""), Err(CmdlineError::Missing("sdsec.app")));
    for (line, key) in [
        (ok.replace("/app/a", "/bin/sh"), "sdsec.app"),
        (ok.replace("/app/a", "/app/../init"), "sdsec.app"),
        (ok.replace("/app/a", "/app/a/b"), "sdsec.app"),
        (ok.replace("/app/a", "/app/"), "sdsec.app"),
        (ok.replace("/app/a", "/app/.."), "sdsec.app"),
        (ok.replace("/app/a", "app/a"), "sdsec.app"),
        (ok.replace("8080", "0"), "sdsec.port"),
        (ok.replace("8080", "65536"), "sdsec.port"),
        (ok.replace("8080", "-1"), "sdsec.port"),
        (ok.replace("8080", ""), "sdsec.port"),
        (ok.replace("/24", "/33"), "sdsec.ip"),
        (ok.replace("/24", ""), "sdsec.ip"),
        (ok.replace("10.0.2.15", "::1"), "sdsec.ip"),
        (ok.replace("10.0.2.2", "gateway"), "sdsec.gw"),
        (format!("{ok} sdsec.listen=x"), "sdsec.listen"),
        (format!("{ok} sdsec.arg=%zz"), "sdsec.arg"),
        (format!("{ok} sdsec.arg=%4"), "sdsec.arg"),
        (format!("{ok} sdsec.arg=%FF"), "sdsec.arg"),
        (format!("{ok} sdsec.arg=%+5"), "sdsec.arg"),
    ] {
        let e = Launch::decode(&line).unwrap_err();
        assert!(matches!(e, CmdlineError::Bad { key: k, .. } if k == key), "{line}: {e}");
    }
    for key in ["sdsec.app=/app/b", "sdsec.port=81", "sdsec.ip=10.0.0.1/8", "sdsec.gw=10.0.0.1", "sdsec.listen=80"] {
        let twice = format!("{ok} {key} sdsec.listen=80");
        assert!(matches!(Launch::decode(&twice), Err(CmdlineError::Twice(_))), "{twice}");
    }
    // Settings after `--` are init's argv, not ours; unknown `sdsec.` keys are a later
    // version's and words without `=` the kernel's.
    assert_eq!(Launch::decode(&format!("-- {ok}")), Err(CmdlineError::Missing("sdsec.app")));
    assert_eq!(Launch::decode(&format!("{ok} -- sdsec.app=/app/b")).unwrap().app, "a");
    assert_eq!(Launch::decode(&format!("{ok} sdsec.future=1 sdsec quiet")).unwrap().app, "a");
}

#[test]
fn arguments_survive_encoding() {
    for arg in ["--listen", "0.0.0.0:8080", "a b", "say \"hi\"", "100%", "", "é", "-- x", "\n\t", "%41"] {
        let word = encode_arg(arg);
        assert!(word.bytes().all(is_plain_or_escape), "{word}");
        assert_eq!(decode_arg(&word).as_deref(), Some(arg));
    }
    assert_eq!(decode_arg("say%20%22hi%22").as_deref(), Some("say \"hi\""));
    assert_eq!(decode_arg("%c3%a9").as_deref(), Some("é"));
}

fn is_plain_or_escape(b: u8) -> bool {
    is_plain(b) || b == b'%'
}

#[test]
fn the_encoder_refuses_what_the_decoder_would_not_read() {
    let items = |item: &str| vec![item.to_owned()];
    for item in ["", "a b", "a\tb", "say\"hi\"", "x\n"] {
        assert_eq!(launch().encode(&items(item), false), Err(CmdlineError::BadItem(item.into())));
    }
    for item in ["console=tty0", "rdinit=/bin/sh", "init=/x", "ro", "rw", "root=/dev/vda", "sdsec.app=/app/x", "--"] {
        assert_eq!(launch().encode(&items(item), false), Err(CmdlineError::Reserved(item.into())));
    }
    for app in ["", ".", "..", "a/b", "a b", "a=b"] {
        let launch = Launch { app: app.into(), ..launch() };
        assert!(matches!(launch.encode(&[], false), Err(CmdlineError::Bad { key: "sdsec.app", .. })), "{app}");
    }
    let clash = Launch { listen: 8080, ..launch() };
    assert!(matches!(clash.encode(&[], false), Err(CmdlineError::Bad { key: "sdsec.listen", .. })));
    let zero = Launch { app_port: 0, ..launch() };
    assert!(matches!(zero.encode(&[], false), Err(CmdlineError::Bad { key: "sdsec.port", .. })));
    let wide = Launch { network: Network { prefix: 33, ..net::GUEST }, ..launch() };
    assert!(matches!(wide.encode(&[], false), Err(CmdlineError::Bad { key: "sdsec.ip", .. })));
    let long = Launch { args: vec![" ".repeat(700)], ..launch() };
    assert!(matches!(long.encode(&[], false), Err(CmdlineError::TooLong(n)) if n > MAX_LEN));
}

fn app_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,12}".prop_filter("not . or ..", |n| n != "." && n != "..")
}

fn kernel_params() -> impl Strategy<Value = Vec<String>> {
    let param = "[a-z_]{1,10}(=[a-z0-9,]{1,6})?"
        .prop_filter("not reserved", |p| !RESERVED.contains(&p.split('=').next().unwrap_or_default()));
    proptest::collection::vec(param, 0..4)
}

fn launches() -> impl Strategy<Value = Launch> {
    let args = proptest::collection::vec(any::<String>(), 0..4);
    let network = (any::<u32>(), 0u8..=32, any::<u32>()).prop_map(|(ip, prefix, gw)| Network {
        ip: Ipv4Addr::from(ip),
        prefix,
        gateway: Ipv4Addr::from(gw),
    });
    (app_name(), args, 1u16.., 1u16.., network).prop_filter_map(
        "ports clash",
        |(app, args, app_port, listen, network)| {
            (app_port != listen).then_some(Launch {
                app,
                args,
                app_port,
                listen,
                network,
                snapshot: false,
                provision: false,
            })
        },
    )
}

proptest! {
    #[test]
    fn whatever_is_encoded_decodes_to_itself(launch in launches(), kernel in kernel_params(), ro: bool) {
        match launch.encode(&kernel, ro) {
            Ok(line) => {
                prop_assert!(line.len() <= MAX_LEN);
                prop_assert_eq!(Launch::decode(&line), Ok(launch));
                let words: Vec<&str> = line.split(' ').collect();
                prop_assert!(kernel.iter().all(|k| words.contains(&k.as_str())));
                prop_assert_eq!(words.contains(&"ro"), ro);
            }
            Err(e) => prop_assert!(matches!(e, CmdlineError::TooLong(_)), "{}", e),
        }
    }

    #[test]
    fn any_line_decodes_or_is_refused_without_panicking(line in any::<String>()) {
        let _ = Launch::decode(&line);
    }

    #[test]
    fn settings_among_noise_decode_or_are_refused(words in proptest::collection::vec("(sdsec\\.(app|port|listen|ip|gw|arg)=)?[ -~]{0,12}", 0..12)) {
        let _ = Launch::decode(&words.join(" "));
    }
}
