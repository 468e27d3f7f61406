//! What several `testbed` integration tests share.

use std::path::Path;
use std::process::Command;

/// Runs `testbed ARGS --out OUT`, asserts it succeeded and returns its stdout.
pub fn testbed(args: &[&str], out: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run testbed");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `testbed compare ARGS --out OUT` (see [`testbed`]).
#[allow(dead_code)] // each test binary compiles this module; not all use it
pub fn compare(args: &[&str], out: &Path) -> String {
    testbed(&[&["compare"], args].concat(), out)
}
