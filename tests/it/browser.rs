//! The browser client (`static/`) end to end in real headless Chromium: runs
//! `node --test tests/browser/e2e.mjs` against this build's server binary.
//!
//! Needs `CHROMIUM_BIN` (Debian's `chromium`) and `npm ci --prefix tests/browser`; without
//! `CHROMIUM_BIN` the test says so and passes (`.ci/run` sets it up).

use std::path::Path;
use std::process::Command;

#[tokio::test]
async fn browser_e2e() {
    let Some(chromium) = std::env::var_os("CHROMIUM_BIN").filter(|v| !v.is_empty()) else {
        crate::support::skip("browser_e2e", "CHROMIUM_BIN is not set (see .ci/run)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules").is_dir(),
        "tests/browser/node_modules is missing: run `npm ci --prefix tests/browser` first"
    );

    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["--test", "--test-reporter=spec", "tests/browser/e2e.mjs"])
            .current_dir(root)
            .env("CHATTERBOX_BIN", env!("CARGO_BIN_EXE_chatterbox"))
            .env("CHROMIUM_BIN", chromium)
            .output()
    })
    .await
    .expect("the blocking task runs")
    .expect("node runs (is Node.js installed?)");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser e2e tests failed ({}); screenshots are in tests/browser/artifacts/\n\
         --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    println!("{stdout}");
}
