//! The `url` key: an `http://` URL to this machine, checked step by step
//! (scheme, characters, authority and request target, host, port) so that
//! each refusal says what is wrong.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a refused host is told: the hosts that are allowed.
const ALLOWED: &str = "the host must be this machine (127.0.0.0/8, [::1] or localhost)";

/// A checked `http://` URL to this machine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpUrl {
    /// The URL as configured.
    pub(crate) raw: String,
    /// The `Host` header: host and port as written.
    pub(crate) authority: String,
    /// The loopback addresses to try, in order.
    pub(crate) addrs: Vec<SocketAddr>,
    /// The request target: path and query, at least `/`.
    pub(crate) path: String,
}

/// A URL's host, before the loopback check.
enum Host {
    /// `localhost`, never looked up.
    Localhost,
    /// An address literal.
    Ip(IpAddr),
}

/// Checks that `url` is `http://` to a loopback host; the error completes
/// the sentence `url: "<url>" ...`.
pub(crate) fn parse_url(url: &str) -> Result<HttpUrl, String> {
    let rest = strip_scheme(url)?;
    check_characters(url)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let path = match target.chars().next() {
        None => "/".to_owned(),
        Some('?') => format!("/{target}"),
        Some(_) => target.to_owned(),
    };
    if authority.contains('@') {
        return Err("has user information (user@host), which is not supported".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => ipv6_host(bracketed)?,
        None => named_host(authority)?,
    };
    let port = parse_port(port)?;
    Ok(HttpUrl {
        raw: url.to_owned(),
        authority: authority.to_owned(),
        addrs: loopback_addrs(host, port)?,
        path,
    })
}

/// What follows `http://` (in any case).
fn strip_scheme(url: &str) -> Result<&str, String> {
    match url.split_at_checked(7) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http://") => Ok(rest),
        _ => Err(format!(
            "is not allowed: only http:// URLs are supported, and {ALLOWED}"
        )),
    }
}

/// Refuses what cannot go into a request line as is: spaces and control
/// characters (which could forge headers), non-ASCII, and a fragment.
fn check_characters(url: &str) -> Result<(), String> {
    if let Some(c) = url.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("contains {c:?}; percent-encode it"));
    }
    if url.contains('#') {
        return Err("has a fragment (#...), which is never sent; remove it".into());
    }
    Ok(())
}

/// `[v6addr]` or `[v6addr]:port`, the opening bracket already removed.
fn ipv6_host(bracketed: &str) -> Result<(Host, Option<&str>), String> {
    let (host, after) = bracketed
        .split_once(']')
        .ok_or("has an IPv6 address without its closing ']'")?;
    let port = match after {
        "" => None,
        _ => Some(
            after
                .strip_prefix(':')
                .ok_or("has something other than :port after the IPv6 address")?,
        ),
    };
    let ip: Ipv6Addr = host
        .parse()
        .map_err(|_| format!("has {host:?} between [ and ], which is not an IPv6 address"))?;
    Ok((Host::Ip(IpAddr::V6(ip)), port))
}

/// `localhost` or a dotted IPv4 address, with an optional `:port`.
fn named_host(authority: &str) -> Result<(Host, Option<&str>), String> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host = if host.eq_ignore_ascii_case("localhost") {
        Host::Localhost
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        Host::Ip(IpAddr::V4(ip))
    } else if host.is_empty() {
        return Err("has no host".into());
    } else {
        return Err(format!("is not allowed: {ALLOWED}, not {host:?}"));
    };
    Ok((host, port))
}

/// The port as written, 80 if none.
fn parse_port(port: Option<&str>) -> Result<u16, String> {
    match port {
        None => Ok(80),
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("has port {p:?}; a port is a number from 1 to 65535")),
    }
}

/// The addresses to try: `localhost` as 127.0.0.1 then ::1, a loopback
/// literal as itself; any other address is refused.
fn loopback_addrs(host: Host, port: u16) -> Result<Vec<SocketAddr>, String> {
    match host {
        Host::Localhost => Ok(vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        ]),
        Host::Ip(ip) if ip.is_loopback() => Ok(vec![SocketAddr::new(ip, port)]),
        Host::Ip(ip) => Err(format!("is not allowed: {ALLOWED}, not {ip}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_loopback_http_urls_are_accepted() {
        let ok = [
            ("http://127.0.0.1:8080/hook", "127.0.0.1:8080", "/hook"),
            ("http://127.1.2.3/", "127.1.2.3:80", "/"),
            ("http://[::1]:9000", "[::1]:9000", "/"),
            ("HTTP://LocalHost:81/a?b=c", "127.0.0.1:81", "/a?b=c"),
            ("http://localhost?x=1", "127.0.0.1:80", "/?x=1"),
        ];
        for (url, addr, path) in ok {
            let parsed = parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(parsed.addrs[0].to_string(), addr, "{url}");
            assert_eq!(parsed.path, path, "{url}");
        }
        assert_eq!(parse_url("http://localhost").unwrap().addrs.len(), 2);

        let refused = [
            ("https://127.0.0.1/hook", "only http:// URLs are supported"),
            ("ftp://127.0.0.1/", "only http:// URLs are supported"),
            ("http://example.com/hook", "not \"example.com\""),
            ("http://10.0.0.1/hook", "not 10.0.0.1"),
            ("http://0.0.0.0:80/", "not 0.0.0.0"),
            ("http://[::2]/", "not ::2"),
            ("http://[::ffff:127.0.0.1]/", "not ::ffff:127.0.0.1"),
            ("http://127.1/", "not \"127.1\""),
            (
                "http://localhost.example.com/",
                "not \"localhost.example.com\"",
            ),
            ("http://user@127.0.0.1/", "user information"),
            ("http://127.0.0.1:0/", "port \"0\""),
            ("http://127.0.0.1:99999/", "port \"99999\""),
            ("http://127.0.0.1:/", "port \"\""),
            ("http:///hook", "has no host"),
            ("http://127.0.0.1/a b", "contains ' '"),
            ("http://127.0.0.1/a\r\nX-Evil: 1", "contains '\\r'"),
            ("http://127.0.0.1/#top", "fragment"),
            ("http://[::1/", "closing ']'"),
        ];
        for (url, want) in refused {
            let err = parse_url(url).map(|u| u.raw).unwrap_err();
            assert!(err.contains(want), "{url}: {err}");
        }
    }
}
