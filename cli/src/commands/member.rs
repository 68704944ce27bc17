//! `member list|add|remove|update|promote`.

use crate::client::Conn;
use api::etcdserverpb::{
    cluster_client::ClusterClient, MemberAddRequest, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, MemberUpdateRequest,
};
use prost::Message;

use super::{emit, Ctx};
use crate::args::{flag, Kind, Parsed};
use crate::error::{exit, CliError, Result};
use crate::gofmt::quote;
use crate::help::{Group, Spec};
use crate::printer::{Format, MemberChange};

pub const GROUP: Group = Group {
    name: "member",
    summary: "the members of the cluster",
};

pub const LIST: Spec = Spec {
    name: "member list",
    args: "[flags]",
    summary: "list the members of the cluster",
    about: "With -w simple, each member is one line of comma-separated fields: ID (hex),
status (started, or unstarted for a member that has not joined yet), name,
peer URLs, client URLs, is learner.",
    flags: &[],
};

pub const ADD: Spec = Spec {
    name: "member add",
    args: "<name> --peer-urls=<url>[,<url>...] [flags]",
    summary: "add a member to the cluster, to be started next",
    about: "Registers the member; then start it with the ETCD_* settings printed (with
-w simple), which name the cluster it joins. A voting member counts towards the quorum as
soon as it is added, so start it promptly; a --learner does not vote until promoted.",
    flags: &[
        flag(
            "learner",
            None,
            Kind::Bool,
            "false",
            "add the member as a non-voting learner",
        ),
        flag(
            "peer-urls",
            None,
            Kind::Str,
            "",
            "the new member's peer URLs, comma-separated",
        ),
    ],
};

pub const REMOVE: Spec = Spec {
    name: "member remove",
    args: "<member ID>",
    summary: "remove a member from the cluster",
    about: "<member ID> is in hex, as member list prints it.",
    flags: &[],
};

pub const UPDATE: Spec = Spec {
    name: "member update",
    args: "<member ID> --peer-urls=<url>[,<url>...]",
    summary: "change a member's peer URLs",
    about: "",
    flags: &[flag(
        "peer-urls",
        None,
        Kind::Str,
        "",
        "the member's new peer URLs, comma-separated",
    )],
};

pub const PROMOTE: Spec = Spec {
    name: "member promote",
    args: "<member ID>",
    summary: "make a learner a voting member",
    about: "The server refuses until the learner has caught up with the leader's log.",
    flags: &[],
};

fn cluster(ch: Conn) -> ClusterClient<Conn> {
    ClusterClient::new(ch)
}

/// etcd's `types.NewURLs`, which clientv3 applies to peer URLs before sending them.
fn check_urls(urls: &[String]) -> Result<()> {
    let fail = |m: String| CliError::exit(exit::ERROR, m);
    for raw in urls {
        let u = raw.trim();
        let (scheme, rest) = match u.split_once(':') {
            Some((s, r))
                if s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                (s.to_ascii_lowercase(), r)
            }
            _ => (String::new(), u),
        };
        if !["http", "https", "unix", "unixs"].contains(&scheme.as_str()) {
            return Err(fail(format!(
                "URL scheme must be http, https, unix, or unixs: {u}"
            )));
        }
        let (authority, path) = match rest.strip_prefix("//") {
            Some(r) => {
                let end = r.find(['/', '?', '#']).unwrap_or(r.len());
                let path_end = r.find(['?', '#']).unwrap_or(r.len()).max(end);
                (&r[..end], &r[end..path_end])
            }
            None => ("", rest.split(['?', '#']).next().unwrap_or_default()),
        };
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if !is_host_port(host) {
            return Err(fail(format!(
                "URL address does not have the form \"host:port\": {u}"
            )));
        }
        if !path.is_empty() {
            return Err(fail(format!("URL must not contain a path: {u}")));
        }
    }
    Ok(())
}

/// Whether Go's `net.SplitHostPort` accepts `host`.
fn is_host_port(host: &str) -> bool {
    if let Some(rest) = host.strip_prefix('[') {
        return rest
            .split_once(']')
            .is_some_and(|(_, port)| port.starts_with(':') && !port[1..].contains(':'));
    }
    host.matches(':').count() == 1 && !host.contains(['[', ']'])
}

fn member_id(p: &Parsed) -> Result<u64> {
    if p.args.len() != 1 {
        return Err(CliError::bad_args("member ID is not provided"));
    }
    crate::gofmt::parse_uint(&p.args[0], 16)
        .map_err(|e| CliError::bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

fn peer_urls(p: &Parsed) -> Result<Vec<String>> {
    let raw = p.str("peer-urls");
    if raw.is_empty() {
        return Err(CliError::bad_args("member peer urls not provided"));
    }
    Ok(raw.split(',').map(str::to_string).collect())
}

pub async fn add(ctx: &mut Ctx) -> Result<()> {
    let args = &ctx.parsed.args;
    let Some(name) = args.first().cloned() else {
        return Err(CliError::bad_args("member name not provided"));
    };
    if args.len() > 1 {
        let mut why = "too many arguments".to_string();
        for a in args {
            if a.to_lowercase().starts_with("http") {
                why.push_str(&format!(", did you mean --peer-urls={a}"));
            }
        }
        return Err(CliError::bad_args(why));
    }
    let urls = peer_urls(&ctx.parsed)?;
    let is_learner = ctx.parsed.bool("learner");
    let (client, printer) = ctx.connect()?;
    check_urls(&urls)?;
    let resp = client
        .unary(|ch| {
            let peer_ur_ls = urls.clone();
            async move {
                cluster(ch)
                    .member_add(MemberAddRequest {
                        peer_ur_ls,
                        is_learner,
                    })
                    .await
            }
        })
        .await?;
    emit(&printer.member_add(&resp)?);
    if printer.format == Format::Simple {
        let new_id = resp.member.as_ref().map_or(0, |m| m.id);
        let mut conf = Vec::new();
        for m in &resp.members {
            let n = if m.id == new_id { &name } else { &m.name };
            for u in &m.peer_ur_ls {
                conf.push(format!("{n}={u}"));
            }
        }
        println!();
        println!("ETCD_NAME={}", quote(name.as_bytes()));
        println!("ETCD_INITIAL_CLUSTER={}", quote(conf.join(",").as_bytes()));
        println!(
            "ETCD_INITIAL_ADVERTISE_PEER_URLS={}",
            quote(ctx.parsed.str("peer-urls").as_bytes())
        );
        println!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
    }
    Ok(())
}

pub async fn remove(ctx: &mut Ctx) -> Result<()> {
    let id = member_id(&ctx.parsed)?;
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| async move { cluster(ch).member_remove(MemberRemoveRequest { id }).await })
        .await?;
    emit(&printer.member_change(MemberChange {
        verb: "removed from",
        id,
        header: &resp.header,
        members: &resp.members,
        encoded: resp.encode_to_vec(),
    })?);
    Ok(())
}

pub async fn update(ctx: &mut Ctx) -> Result<()> {
    let id = member_id(&ctx.parsed)?;
    let urls = peer_urls(&ctx.parsed)?;
    let (client, printer) = ctx.connect()?;
    check_urls(&urls)?;
    let resp = client
        .unary(|ch| {
            let peer_ur_ls = urls.clone();
            async move {
                cluster(ch)
                    .member_update(MemberUpdateRequest { id, peer_ur_ls })
                    .await
            }
        })
        .await?;
    emit(&printer.member_change(MemberChange {
        verb: "updated in",
        id,
        header: &resp.header,
        members: &resp.members,
        encoded: resp.encode_to_vec(),
    })?);
    Ok(())
}

pub async fn promote(ctx: &mut Ctx) -> Result<()> {
    let id = member_id(&ctx.parsed)?;
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| async move {
            cluster(ch)
                .member_promote(MemberPromoteRequest { id })
                .await
        })
        .await?;
    emit(&printer.member_change(MemberChange {
        verb: "promoted in",
        id,
        header: &resp.header,
        members: &resp.members,
        encoded: resp.encode_to_vec(),
    })?);
    Ok(())
}

pub async fn list(ctx: &mut Ctx) -> Result<()> {
    let (client, printer) = ctx.connect()?;
    let resp = client
        .unary(|ch| async move {
            ClusterClient::new(ch)
                .member_list(MemberListRequest {
                    linearizable: false,
                })
                .await
        })
        .await?;
    emit(&printer.member_list(&resp)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(u: &str) -> std::result::Result<(), String> {
        check_urls(&[u.to_string()]).map_err(|e| e.render().0)
    }

    #[test]
    fn peer_urls_are_checked_like_etcd() {
        assert_eq!(check("http://127.0.0.1:2380"), Ok(()));
        assert_eq!(check(" https://[::1]:2380 "), Ok(()));
        assert_eq!(
            check("bad"),
            Err("Error: URL scheme must be http, https, unix, or unixs: bad\n".to_string())
        );
        assert_eq!(
            check("http://host"),
            Err(
                "Error: URL address does not have the form \"host:port\": http://host\n"
                    .to_string()
            )
        );
        assert_eq!(
            check("http://h:1/p"),
            Err("Error: URL must not contain a path: http://h:1/p\n".to_string())
        );
    }
}
