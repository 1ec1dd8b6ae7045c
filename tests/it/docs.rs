//! The reference documents list what the code has: every error code, every close reason and
//! every setting comes from one list in the code, and the docs must name each.

use crate::dashboard::manifest_dir;

fn read(path: &str) -> String {
    std::fs::read_to_string(manifest_dir().join(path)).unwrap()
}

#[test]
fn protocol_reference_and_observability_name_every_error_code() {
    let protocol = read("docs/PROTOCOL.md");
    let observability = read("docs/observability.md");
    for code in chatterbox::protocol::ErrorCode::ALL {
        let code = format!("`{}`", code.as_str());
        assert!(protocol.contains(&code), "docs/PROTOCOL.md lacks {code}");
        assert!(
            observability.contains(&code),
            "docs/observability.md lacks {code}"
        );
    }
}

#[test]
fn observability_names_every_close_reason() {
    let observability = read("docs/observability.md");
    for reason in chatterbox::telemetry::CloseReason::ALL {
        let reason = format!("| `{}` |", reason.as_str());
        assert!(
            observability.contains(&reason),
            "docs/observability.md lacks {reason}"
        );
    }
}

#[test]
fn readme_configuration_table_lists_every_setting() {
    use clap::CommandFactory;
    let readme = read("README.md");
    let command = chatterbox::Config::command();
    let missing: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .filter(|env| !readme.contains(&format!("| `{env}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's configuration table lacks {missing:?}"
    );
}
