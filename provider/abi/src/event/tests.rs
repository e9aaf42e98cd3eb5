use super::*;

fn access() -> Access<'static> {
    Access {
        ts: "2024-10-04T12:00:00.000Z".into(),
        src: "10.0.2.2:5555".parse().unwrap(),
        method: Some("GET".into()),
        path: Some("/reports".into()),
        principal: None,
        status: Some(403),
        reason: Some("denied_by:p".into()),
    }
}

/// The lines the runtime has always written: the host and log readers depend on them.
#[test]
fn lines_are_written_as_before() {
    let cases = [
        (
            Event::Ready { node: "api".into(), listen: "0.0.0.0:80".into(), app: Some("/app/api".into()) },
            r#"{"event":"ready","node":"api","listen":"0.0.0.0:80","app":"/app/api"}"#,
        ),
        (
            Event::Ready { node: "api".into(), listen: "127.0.0.1:1".into(), app: None },
            r#"{"event":"ready","node":"api","listen":"127.0.0.1:1"}"#,
        ),
        (
            Event::InitError { step: "network".into(), error: "no eth0".into() },
            r#"{"event":"init_error","step":"network","error":"no eth0"}"#,
        ),
        (
            Event::InitWarning { step: "modules".into(), error: "x".into() },
            r#"{"event":"init_warning","step":"modules","error":"x"}"#,
        ),
        (Event::AppExit { status: Some(0), signal: None }, r#"{"event":"app_exit","status":0}"#),
        (Event::AppExit { status: None, signal: Some(9) }, r#"{"event":"app_exit","status":null,"signal":9}"#),
        (Event::Shutdown { reason: ShutdownReason::Signal }, r#"{"event":"shutdown","reason":"signal"}"#),
        (Event::Reconfigured { digest: "sha256:ab".into() }, r#"{"event":"reconfigured","digest":"sha256:ab"}"#),
        (
            Event::ControlRefused { reason: Refusal::BadMac, seq: 5 },
            r#"{"event":"control_refused","reason":"bad_mac","seq":5}"#,
        ),
        (Event::AuditOverflow { ts: "t".into(), dropped: 3 }, r#"{"event":"audit_overflow","ts":"t","dropped":3}"#),
        (Event::AuditOpen { runtime: "0.1.0".into() }, r#"{"event":"audit_open","runtime":"0.1.0"}"#),
        (
            Event::ExecRefused { ts: "t".into(), pid: 7, path: Some("/bin/sh".into()) },
            r#"{"event":"exec_refused","ts":"t","pid":7,"path":"/bin/sh"}"#,
        ),
        (
            Event::access(AccessKind::AuthzDeny, access()),
            r#"{"event":"authz_deny","ts":"2024-10-04T12:00:00.000Z","src":"10.0.2.2:5555","method":"GET","path":"/reports","principal":null,"status":403,"reason":"denied_by:p"}"#,
        ),
    ];
    for (event, line) in cases {
        assert_eq!(event.to_line(), line);
        assert_eq!(Event::parse(line), Some(event), "{line}");
    }
    for (kind, name) in [
        (AccessKind::AuthnFailure, "authn_failure"),
        (AccessKind::AuthzDeny, "authz_deny"),
        (AccessKind::FirewallDrop, "firewall_drop"),
        (AccessKind::Request, "request"),
        (AccessKind::UpstreamError, "upstream_error"),
    ] {
        assert!(Event::access(kind, access()).to_line().starts_with(&format!(r#"{{"event":"{name}","#)));
    }
    for (reason, name) in [
        (Refusal::Malformed, "malformed"),
        (Refusal::BadMac, "bad_mac"),
        (Refusal::Replayed, "replayed"),
        (Refusal::RejectedPlan, "rejected_plan"),
    ] {
        assert!(Event::ControlRefused { reason, seq: 0 }.to_line().contains(&format!(r#""reason":"{name}""#)));
    }
}

#[test]
fn console_lines_that_are_not_events_are_none() {
    let ready = Event::Ready { node: "api".into(), listen: "0.0.0.0:80".into(), app: None };
    assert_eq!(Event::parse("\x1b[0m{\"event\":\"ready\",\"node\":\"api\",\"listen\":\"0.0.0.0:80\"}\r"), Some(ready));
    // The serial line is shared: a partial line before the event, or a kernel message
    // printed into the middle of the line after it, must not hide it.
    for shared in [
        "app log {\"event\":\"ready\",\"node\":\"api\",\"listen\":\"0.0.0.0:80\"}",
        "{\"event\":\"ready\",\"node\":\"api\",\"listen\":\"0.0.0.0:80\"}[    2.5] virtio_net",
    ] {
        assert!(matches!(Event::parse(shared), Some(Event::Ready { .. })), "{shared}");
    }
    for line in [
        "",
        "[    0.1] booting",
        "Kernel panic - not syncing: Attempted to kill init!",
        r#"{"event":"rea"#,
        r#"{"event":"ready"}"#,
        r#"{"event":"no_such_event","x":1}"#,
        r#"{"event":"control_refused","reason":"unheard_of","seq":1}"#,
        r#"{"event":"control_refused","reason":"bad_mac","seq":-1}"#,
        r#"app says "event":"ready" here"#,
        "{",
        "}{",
    ] {
        assert_eq!(Event::parse(line), None, "{line}");
    }
}

#[test]
fn a_log_scans_to_its_events_in_order() {
    let log = "booting\n{\"event\":\"ready\",\"node\":\"a\",\"listen\":\"0.0.0.0:80\"}\nnoise {\n\
        {\"event\":\"control_refused\",\"reason\":\"replayed\",\"seq\":2}\n{\"event\":\"shutdown\",\"reason\":\"signal\"}";
    let events: Vec<Event> = Event::scan(log).collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(events[0], Event::Ready { .. }));
    assert_eq!(events[1], Event::ControlRefused { reason: Refusal::Replayed, seq: 2 });
}
