//! `-w table`: olekukonko/tablewriter's default layout as etcdctl configures it
//! (upper-cased centred headers, right-aligned cells, `+---+` borders).

use api::etcdserverpb::MemberListResponse;

use super::{hashkv_rows, member_rows, status_rows, EpHashKv, EpHealth, EpStatus};

fn width(s: &str) -> usize {
    s.chars().count()
}

/// tablewriter's `Title`: `_` and `.` become spaces, then upper case.
fn title(name: &str) -> String {
    let t = name.replace(['_', '.'], " ");
    let t = t.trim();
    if t.is_empty() && !name.is_empty() {
        " ".to_string()
    } else {
        t.to_uppercase()
    }
}

/// Renders a table with headers and right-aligned rows.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let headers: Vec<String> = headers.iter().map(|h| title(h)).collect();
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| width(&r[i]))
                .chain([width(h)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let border: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let mut out = border.clone();
    for (h, w) in headers.iter().zip(&widths) {
        let gap = w - width(h);
        let left = gap / 2;
        out.push_str(&format!(
            "| {}{}{} ",
            " ".repeat(left),
            h,
            " ".repeat(gap - left)
        ));
    }
    out.push_str("|\n");
    out.push_str(&border);
    for row in rows {
        for (cell, w) in row.iter().zip(&widths) {
            out.push_str(&format!("| {}{} ", " ".repeat(w - width(cell)), cell));
        }
        out.push_str("|\n");
    }
    out.push_str(&border);
    out
}

pub fn member_list(resp: &MemberListResponse) -> String {
    render(
        &[
            "ID",
            "Status",
            "Name",
            "Peer Addrs",
            "Client Addrs",
            "Is Learner",
        ],
        &member_rows(resp),
    )
}

pub fn endpoint_status(list: &[EpStatus]) -> String {
    render(
        &[
            "endpoint",
            "ID",
            "version",
            "db size",
            "is leader",
            "is learner",
            "raft term",
            "raft index",
            "raft applied index",
            "errors",
        ],
        &status_rows(list),
    )
}

pub fn endpoint_health(list: &[EpHealth]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|h| {
            vec![
                h.endpoint.clone(),
                h.health.to_string(),
                h.took.clone(),
                h.error.clone(),
            ]
        })
        .collect();
    render(&["endpoint", "health", "took", "error"], &rows)
}

pub fn endpoint_hashkv(list: &[EpHashKv]) -> String {
    render(&["endpoint", "hash"], &hashkv_rows(list))
}

#[cfg(test)]
mod tests {
    #[test]
    fn layout_matches_tablewriter() {
        let rows = vec![vec![
            "127.0.0.1:23791".to_string(),
            "true".to_string(),
            "1.928356ms".to_string(),
            String::new(),
        ]];
        let expected = "\
+-----------------+--------+------------+-------+
|    ENDPOINT     | HEALTH |    TOOK    | ERROR |
+-----------------+--------+------------+-------+
| 127.0.0.1:23791 |   true | 1.928356ms |       |
+-----------------+--------+------------+-------+
";
        assert_eq!(
            super::render(&["endpoint", "health", "took", "error"], &rows),
            expected
        );
    }
}
