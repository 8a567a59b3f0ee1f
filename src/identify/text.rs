//! Identify layer, follow-ups: services that greet first often tell more
//! when asked one question (SMTP EHLO, FTP FEAT and an anonymous login,
//! POP3 CAPA, IMAP CAPABILITY, VNC security types). Those answers say
//! whether STARTTLS is offered and whether credentials are needed, which a
//! greeting alone does not.

use super::{Ctx, Io, ServiceInfo, Until, escape_bytes, set_auth};
use crate::model::AuthStatus;

/// Asks the follow-up question for `info.name`, on the connection that
/// delivered `banner`, and records the answers in `info`.
pub(super) async fn follow_up<S: Io + ?Sized>(
    ctx: &Ctx<'_>,
    s: &mut S,
    banner: &[u8],
    info: &mut ServiceInfo,
) {
    match info.name.as_str() {
        "smtp" => smtp(ctx, s, info).await,
        "ftp" => ftp(ctx, s, info).await,
        "pop3" => pop3(ctx, s, info).await,
        "imap" => imap(ctx, s, banner, info).await,
        "vnc" => vnc(ctx, s, banner, info).await,
        _ => {}
    }
}

/// The last complete line of `buf`, without its line ending.
fn last_line(buf: &[u8]) -> Option<&[u8]> {
    if !buf.ends_with(b"\n") {
        return None;
    }
    let body = buf.strip_suffix(b"\n")?;
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    Some(match body.iter().rposition(|&c| c == b'\n') {
        Some(i) => &body[i + 1..],
        None => body,
    })
}

/// A multi-line SMTP/FTP reply is whole once a line reads `NNN ` (or is
/// just `NNN`).
pub(super) fn reply_done(buf: &[u8]) -> bool {
    last_line(buf).is_some_and(|l| {
        l.len() >= 3 && l[..3].iter().all(u8::is_ascii_digit) && (l.len() == 3 || l[3] == b' ')
    })
}

fn lines_upper(buf: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(buf)
        .lines()
        .map(|l| l.trim().to_ascii_uppercase())
        .collect()
}

/// ESMTP extensions from an EHLO reply (`250-STARTTLS` → `STARTTLS`).
pub(super) fn smtp_extensions(reply: &[u8]) -> Vec<String> {
    lines_upper(reply)
        .into_iter()
        .skip(1)
        .filter_map(|l| l.get(4..).map(str::to_string))
        .filter(|l| !l.is_empty())
        .take(40)
        .collect()
}

async fn smtp<S: Io + ?Sized>(ctx: &Ctx<'_>, s: &mut S, info: &mut ServiceInfo) {
    let Some(reply) = ctx
        .exchange(s, b"EHLO portwarden.invalid\r\n", Until::Done(&reply_done))
        .await
    else {
        return;
    };
    let exts = smtp_extensions(&reply);
    let starttls = exts.iter().any(|e| e == "STARTTLS");
    info.extra.insert("starttls".into(), starttls.to_string());
    if let Some(auth) = exts.iter().find(|e| e.starts_with("AUTH")) {
        info.extra.insert(
            "auth_methods".into(),
            escape_bytes(auth[4..].trim().as_bytes(), 96),
        );
    }
    let _ = ctx.send(s, b"QUIT\r\n").await;
}

async fn ftp<S: Io + ?Sized>(ctx: &Ctx<'_>, s: &mut S, info: &mut ServiceInfo) {
    if let Some(reply) = ctx.exchange(s, b"FEAT\r\n", Until::Done(&reply_done)).await {
        let feats = lines_upper(&reply);
        let tls = feats
            .iter()
            .any(|l| l == "AUTH TLS" || l == "AUTH SSL" || l.starts_with("AUTH TLS"));
        info.extra.insert("starttls".into(), tls.to_string());
    }
    // An anonymous login is the question auditors ask of every FTP server.
    let Some(user) = ctx
        .exchange(s, b"USER anonymous\r\n", Until::Done(&reply_done))
        .await
    else {
        return;
    };
    let code = |r: &[u8]| last_line(r).and_then(|l| l.get(..3)).map(<[u8]>::to_vec);
    match code(&user).as_deref() {
        Some(b"230") => anonymous(info, true),
        Some(b"331") => {
            // Servers delay a failed login (vsftpd and PAM: about 3 s) while
            // a welcome comes at once, so a long silence is a refusal.
            let wait = ctx.cfg().read_timeout * 2;
            let pass = ctx
                .exchange_wait(
                    s,
                    b"PASS anonymous@example.org\r\n",
                    wait,
                    Until::Done(&reply_done),
                )
                .await;
            match pass.as_deref().and_then(code).as_deref() {
                Some(b"230") => anonymous(info, true),
                Some(c) if c.starts_with(b"5") => anonymous(info, false),
                None => anonymous(info, false),
                _ => {}
            }
        }
        Some(c) if c.starts_with(b"5") => anonymous(info, false),
        _ => {}
    }
    let _ = ctx.send(s, b"QUIT\r\n").await;
}

fn anonymous(info: &mut ServiceInfo, allowed: bool) {
    info.extra
        .insert("anonymous_login".into(), allowed.to_string());
    set_auth(
        info,
        if allowed {
            AuthStatus::None
        } else {
            AuthStatus::Required
        },
    );
}

fn pop3_done(buf: &[u8]) -> bool {
    buf.starts_with(b"-ERR") && buf.ends_with(b"\n")
        || buf.ends_with(b"\r\n.\r\n")
        || buf == b".\r\n"
}

async fn pop3<S: Io + ?Sized>(ctx: &Ctx<'_>, s: &mut S, info: &mut ServiceInfo) {
    // POP3 has no anonymous access: reading mail always takes a login.
    set_auth(info, AuthStatus::Required);
    if let Some(reply) = ctx.exchange(s, b"CAPA\r\n", Until::Done(&pop3_done)).await {
        let stls = lines_upper(&reply).iter().any(|l| l == "STLS");
        info.extra.insert("starttls".into(), stls.to_string());
    }
    let _ = ctx.send(s, b"QUIT\r\n").await;
}

fn imap_done(buf: &[u8]) -> bool {
    last_line(buf).is_some_and(|l| l.starts_with(b"pw1 "))
}

async fn imap<S: Io + ?Sized>(ctx: &Ctx<'_>, s: &mut S, banner: &[u8], info: &mut ServiceInfo) {
    let preauth = banner.to_ascii_uppercase().starts_with(b"* PREAUTH");
    set_auth(
        info,
        if preauth {
            AuthStatus::None
        } else {
            AuthStatus::Required
        },
    );
    if let Some(reply) = ctx
        .exchange(s, b"pw1 CAPABILITY\r\n", Until::Done(&imap_done))
        .await
    {
        let caps = String::from_utf8_lossy(&reply).to_ascii_uppercase();
        let has = |w: &str| caps.split_whitespace().any(|c| c == w);
        info.extra
            .insert("starttls".into(), has("STARTTLS").to_string());
        if has("LOGINDISABLED") {
            info.extra.insert("login_disabled".into(), "true".into());
        }
    }
    let _ = ctx.send(s, b"pw2 LOGOUT\r\n").await;
}

/// The RFB minor version of a `RFB 003.008\n` greeting.
fn rfb_minor(banner: &[u8]) -> Option<u16> {
    let v = banner.get(4..11)?;
    let major: u16 = std::str::from_utf8(v.get(..3)?).ok()?.parse().ok()?;
    let minor: u16 = std::str::from_utf8(v.get(4..7)?).ok()?.parse().ok()?;
    (major == 3).then_some(minor)
}

/// Security types from the server's answer to our version. RFB 3.3 servers
/// pick one type themselves (a u32); 3.7+ list them (count, then types).
/// `Some(vec![])` is the server refusing us.
pub(super) fn vnc_security_types(minor: u16, answer: &[u8]) -> Option<Vec<u8>> {
    if minor < 7 {
        let t = u32::from_be_bytes(answer.get(..4)?.try_into().ok()?);
        return Some(if t == 0 {
            Vec::new()
        } else {
            vec![u8::try_from(t).unwrap_or(u8::MAX)]
        });
    }
    let n = usize::from(*answer.first()?);
    answer.get(1..1 + n).map(<[u8]>::to_vec)
}

async fn vnc<S: Io + ?Sized>(ctx: &Ctx<'_>, s: &mut S, banner: &[u8], info: &mut ServiceInfo) {
    let Some(minor) = rfb_minor(banner) else {
        return;
    };
    let ours: &[u8] = match minor {
        m if m >= 8 => b"RFB 003.008\n",
        7 => b"RFB 003.007\n",
        _ => b"RFB 003.003\n",
    };
    let done = move |b: &[u8]| vnc_security_types(minor, b).is_some();
    let Some(answer) = ctx.exchange(s, ours, Until::Done(&done)).await else {
        return;
    };
    let Some(types) = vnc_security_types(minor, &answer) else {
        return;
    };
    let names: Vec<String> = types.iter().map(u8::to_string).collect();
    info.extra.insert("security_types".into(), names.join(","));
    if types.is_empty() {
        info.extra.insert("refused".into(), "true".into());
    } else if types.contains(&1) {
        info.auth = AuthStatus::None;
    } else {
        info.auth = AuthStatus::Required;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_replies() {
        assert!(!reply_done(b"220-first\r\n"));
        assert!(reply_done(b"220-first\r\n220 last\r\n"));
        assert!(!reply_done(b"250-PIPELINING\r\n250 STARTT"));
        assert!(reply_done(b"211 End\r\n"));
        assert!(!reply_done(b""));
    }

    #[test]
    fn ehlo_extensions() {
        let r = b"250-mail.example.org\r\n250-PIPELINING\r\n250-starttls\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n";
        assert_eq!(
            smtp_extensions(r),
            vec!["PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN", "8BITMIME"]
        );
    }

    #[test]
    fn vnc_types() {
        assert_eq!(vnc_security_types(8, &[2, 1, 2]), Some(vec![1, 2]));
        assert_eq!(vnc_security_types(8, &[2, 1]), None);
        assert_eq!(vnc_security_types(8, &[0, 0, 0, 0, 5]), Some(vec![]));
        assert_eq!(vnc_security_types(3, &[0, 0, 0, 2]), Some(vec![2]));
        assert_eq!(vnc_security_types(3, &[0, 0]), None);
        assert_eq!(rfb_minor(b"RFB 003.008\n"), Some(8));
        assert_eq!(rfb_minor(b"RFB 00x.008\n"), None);
    }

    #[test]
    fn pop3_and_imap_completion() {
        assert!(pop3_done(b"+OK\r\nUSER\r\nSTLS\r\n.\r\n"));
        assert!(pop3_done(b"-ERR no\r\n"));
        assert!(!pop3_done(b"+OK\r\nUSER\r\n"));
        assert!(imap_done(
            b"* CAPABILITY IMAP4rev1 STARTTLS\r\npw1 OK done\r\n"
        ));
        assert!(!imap_done(b"* CAPABILITY IMAP4rev1\r\n"));
    }
}
