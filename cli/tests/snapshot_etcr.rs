//! `snapshot status` of a snapshot saved from etcr (a copy of its LMDB store ending with a
//! SHA-256), which is no bbolt file: its revision, key count, size and a hash of its contents.

mod common;

use std::path::PathBuf;

use common::{etcr_binary, run_client, Server};

#[test]
fn snapshot_status_reads_a_snapshot_saved_from_etcr() {
    let etcr = etcr_binary().expect("the etcr binary");
    let server = Server::start(&etcr, &[]);
    let etcrctl = PathBuf::from(env!("CARGO_BIN_EXE_etcrctl"));
    let run = |args: &[&str]| {
        let mut full = vec![format!("--endpoints={}", server.endpoint())];
        full.extend(args.iter().map(|s| s.to_string()));
        let (out, err, code) = run_client(&etcrctl, &full, "", &[]);
        assert_eq!(code, 0, "{args:?}: {}", String::from_utf8_lossy(&err));
        String::from_utf8(out).expect("utf-8")
    };
    for i in 0..20 {
        run(&["put", &format!("key{i:02}"), "value"]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("s.db").display().to_string();
    run(&["snapshot", "save", &file]);
    let json = run(&["snapshot", "status", &file, "-w", "json"]);
    let re = regex::Regex::new(
        r#"^\{"hash":(\d+),"revision":(\d+),"totalKey":(\d+),"totalSize":(\d+)\}$"#,
    )
    .unwrap();
    let caps = re.captures(json.trim()).unwrap_or_else(|| panic!("{json}"));
    let field = |i: usize| caps[i].parse::<u64>().unwrap();
    assert!(field(1) > 0, "{json}");
    assert_eq!(field(2), 21, "{json}");
    assert!(field(3) >= 20, "{json}");
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(field(4), size, "{json}");
    // The same file gives the same hash; the table names the same figures.
    assert_eq!(run(&["snapshot", "status", &file, "-w", "json"]), json);
    let table = run(&["snapshot", "status", &file, "-w", "table"]);
    assert!(
        table.contains("REVISION") && table.contains(" 21 "),
        "{table}"
    );
}
