//! A committed entry this member cannot read stops it from applying the log: it never skips
//! the entry and never exits, and it says why on `/health`, in `Status` and to callers.

mod common;

use std::time::{Duration, Instant};

use api::etcdserverpb::maintenance_client::MaintenanceClient;
use api::etcdserverpb::StatusRequest;
use common::{http_get_any, run_etcdctl, Etcr, ETCDCTL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_of_an_unknown_format_halts_the_member_with_a_clear_reason() {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut m = Etcr::start(&dir.path().join("m"), &[]);
    let ep = m.endpoint();
    assert!(run_etcdctl(&ep, &["put", "a", "1"], b"").0);
    m.kill9();

    // Commit an entry written by a (hypothetical) newer etcr: format version 9.
    let forged = {
        let mut wal = raft_wal::Wal::open(
            m.data_dir.join("member").join("wal"),
            raft_wal::Options::default(),
        )
        .unwrap();
        let index = wal.last_index() + 1;
        let hs = wal.hard_state();
        wal.append(
            &[raft_wal::Entry::new(index, hs.term, vec![0xFF, 9, 1, 2, 3])],
            Some(raft_wal::HardState {
                commit: index,
                ..hs
            }),
        )
        .unwrap();
        index
    };
    m.start_again();

    let deadline = Instant::now() + Duration::from_secs(20);
    let errors = loop {
        if let Ok(mut c) = MaintenanceClient::connect(ep.clone()).await {
            if let Ok(s) = c.status(StatusRequest {}).await {
                let errors = s.into_inner().errors;
                if !errors.is_empty() {
                    break errors;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no halt reported; log:\n{}",
            m.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(&format!("entry {forged}")), "{errors:?}");
    assert!(errors[0].contains("format version 9"), "{errors:?}");
    assert!(
        m.log_tail()
            .contains(&format!("entry {forged} cannot be applied")),
        "{}",
        m.log_tail()
    );

    // Still up; unhealthy; what it holds still reads; writes say why they cannot go in.
    assert!(m.child.as_mut().unwrap().try_wait().unwrap().is_none());
    let (status, _) = http_get_any(m.client_port, "/health").unwrap();
    assert!(status.contains("503"), "{status}");
    assert_eq!(
        run_etcdctl(&ep, &["get", "a", "--consistency=s"], b"").1,
        "a\n1\n"
    );
    let (ok, _, err) = run_etcdctl(&ep, &["put", "b", "2"], b"");
    assert!(
        !ok && err.contains("stopped applying the log") && err.contains("format version 9"),
        "{err}"
    );
}
