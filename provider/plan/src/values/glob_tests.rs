//! Pins what `PathGlob::matches` and `matches_ignoring_case` decide: a table of edge cases,
//! and every combination of a few pattern and path segments against the specification
//! written the plain way (split into lists of segments, lower-cased copies).

use super::PathGlob;

/// The specification: what the matcher decided when it was written with lists and copies.
fn spec_matches(glob: &str, path: &str) -> bool {
    let pattern: Vec<&str> = glob.split('/').skip(1).collect();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    spec_segments(&pattern, &segments)
}

fn spec_segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| spec_segments(rest, &path[skip..])),
        Some((p, rest)) => path.split_first().is_some_and(|(s, tail)| spec_segment(p, s) && spec_segments(rest, tail)),
    }
}

fn spec_segment(pattern: &str, segment: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == segment,
        Some((head, tail)) => {
            let Some(rest) = segment.strip_prefix(head) else { return false };
            (0..=rest.len()).filter(|i| rest.is_char_boundary(*i)).any(|i| spec_segment(tail, &rest[i..]))
        }
    }
}

fn spec_ignoring_case(glob: &str, path: &str) -> bool {
    spec_matches(&glob.to_ascii_lowercase(), &path.to_ascii_lowercase())
}

#[test]
fn edge_cases_keep_their_answers() {
    // (glob, path, matches, matches ignoring case)
    let cases: &[(&str, &str, bool, bool)] = &[
        ("/", "/", true, true),
        ("/", "", false, false),
        ("", "", true, true),
        ("", "/", false, false),
        // Whatever comes before the first `/` is not looked at, in the glob or the path.
        ("x", "y", true, true),
        ("x/a", "/a", true, true),
        ("/a", "y/a", true, true),
        ("/**", "", true, true),
        ("/**", "/", true, true),
        ("/**", "/a/b/c", true, true),
        ("/a/**", "/a", true, true),
        ("/a/**", "/a/", true, true),
        ("/a/**", "/ab", false, false),
        ("/a/**/b", "/a/b", true, true),
        ("/a/**/b", "/a/x/y/b", true, true),
        ("/a/**/b", "/a/x/y/c", false, false),
        ("/**/*.bak", "/x/y.bak", true, true),
        ("/**/*.bak", "/y.BAK", false, true),
        ("/*", "/", true, true),
        ("/*", "/a/b", false, false),
        ("/a*", "/a", true, true),
        ("/a*b*c", "/aXbYc", true, true),
        ("/a*b*c", "/abc/", false, false),
        ("/a**b", "/aXYb", true, true),
        ("/a**b", "/aX/Yb", false, false),
        ("/a//b", "/a//b", true, true),
        ("/a//b", "/a/b", false, false),
        ("/a/", "/a", false, false),
        ("/a/", "/a/", true, true),
        ("/ADMIN", "/admin", false, true),
        ("/admin", "/ADMIN", false, true),
        ("/é*", "/éa", true, true),
        ("/*é", "/aé", true, true),
        ("/é", "/É", false, false),
        ("/*", "/é", true, true),
        ("/a*é", "/A€é", false, true),
    ];
    for &(glob, path, exact, folded) in cases {
        let g = PathGlob(glob.to_owned());
        assert_eq!(g.matches(path), exact, "{glob:?} {path:?}");
        assert_eq!(g.matches_ignoring_case(path), folded, "{glob:?} {path:?} ignoring case");
        assert_eq!(spec_matches(glob, path), exact, "spec: {glob:?} {path:?}");
        assert_eq!(spec_ignoring_case(glob, path), folded, "spec: {glob:?} {path:?} ignoring case");
    }
}

/// Every string of up to `n` segments from `parts`, each with and without a leading `/`.
fn combinations(parts: &[&str], n: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..n {
        last = last.iter().flat_map(|prefix| parts.iter().map(move |p| format!("{prefix}/{p}"))).collect();
        out.extend(last.iter().cloned());
    }
    let without_slash: Vec<String> = out.iter().filter_map(|s| s.strip_prefix('/').map(str::to_owned)).collect();
    out.extend(without_slash);
    out
}

#[test]
fn agrees_with_the_specification_on_every_small_case() {
    let globs = combinations(&["", "a", "A", "*", "**", "a*", "*b", "a*b", "*é*"], 3);
    let paths = combinations(&["", "a", "A", "ab", "aXb", "é"], 3);
    for glob in &globs {
        let g = PathGlob(glob.clone());
        for path in &paths {
            assert_eq!(g.matches(path), spec_matches(glob, path), "{glob:?} {path:?}");
            assert_eq!(g.matches_ignoring_case(path), spec_ignoring_case(glob, path), "{glob:?} {path:?} (case)");
        }
    }
}
