//! Bad input: another schema version, a truncated file, an empty file, a
//! missing file. The library's error and the binary's one line name the file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture_text() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/standard.json");
    std::fs::read_to_string(p).unwrap()
}

fn bad_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let good = fixture_text();
    let v2 = good.replacen("\"schema_version\": 1", "\"schema_version\": 2", 1);
    assert_ne!(v2, good, "fixture layout changed");
    let cases = [
        ("other-version.json", v2, "version 2 is not supported"),
        (
            "truncated.json",
            good[..good.len() / 2].to_string(),
            "truncated",
        ),
        ("empty.json", String::new(), "empty"),
        (
            "other-schema.json",
            r#"{"schema":"rally/task","schema_version":1}"#.to_string(),
            "not a loadgen results file",
        ),
    ];
    cases
        .into_iter()
        .map(|(name, body, why)| {
            let path = dir.join(name);
            std::fs::write(&path, body).unwrap();
            (path, why)
        })
        .collect()
}

#[test]
fn load_errors_name_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (path, why) in bad_files(dir.path()) {
        let err = reports::load(&path).expect_err("bad input must not load");
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(why), "{msg} should say {why:?}");
    }
    let missing = dir.path().join("missing.json");
    let msg = reports::load(&missing).unwrap_err().to_string();
    assert!(msg.contains("missing.json"), "{msg}");
}

#[test]
fn binary_prints_one_line_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/p2p.json");
    for (path, why) in bad_files(dir.path()) {
        let out = Command::new(env!("CARGO_BIN_EXE_report"))
            .arg("compare")
            .arg("--baseline")
            .arg(&path)
            .arg("--candidate")
            .arg(&good)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(why), "{err}");
        assert!(!dir.path().join("out/index.html").exists());
    }
}

#[test]
fn binary_renders_the_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = Command::new(env!("CARGO_BIN_EXE_report"))
        .arg("render")
        .arg(fx.join("standard.json"))
        .arg(fx.join("p2p.json"))
        .arg("--out")
        .arg(dir.path())
        .arg("--limit")
        .arg("max-throughput")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Limits (max-throughput)"), "{stdout}");
    assert!(stdout.contains("4× more VMs"), "{stdout}");
    for f in ["index.html", "summary.md", "summary.csv", "headline.json"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_report"))
        .args(["render", "x.json", "--limit", "fastest"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
