//! Allowed origins: `scheme://host[:port]`, with `*.` for any subdomain and
//! `:*` for any port, as a node's owner and an account's policy write them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The scheme of an origin: node-host sends plain HTTP and HTTPS only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://`
    Http,
    /// `https://`
    Https,
}

impl Scheme {
    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// Exactly this name or address (lower case; an IPv6 address bare).
    Exact(String),
    /// Any name that ends in `.` + this one (not the name itself).
    Subdomains(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// The scheme's default port.
    Default,
    Exact(u16),
    Any,
}

/// One allowed origin, e.g. `https://api.example.com`,
/// `https://*.example.org:8443` or `http://127.0.0.1:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: Scheme,
    host: Host,
    port: Port,
}

/// Why a text is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not an allowed origin: {why}. Write scheme://host[:port], e.g. \
     https://api.example.com, https://*.example.org:8443 or http://127.0.0.1:*"
)]
pub struct OriginError {
    text: String,
    why: &'static str,
}

impl FromStr for Origin {
    type Err = OriginError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |why| OriginError {
            text: text.to_owned(),
            why,
        };
        let (scheme, rest) = text.split_once("://").ok_or(fail("it has no scheme"))?;
        let scheme = Scheme::parse(scheme).ok_or(fail("the scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(fail("an origin has no path, query or fragment"));
        }
        if rest.contains('@') {
            return Err(fail("an origin has no user name or password"));
        }
        let (host, port) = split_host_port(rest).ok_or(fail("its port is not a number"))?;
        let port = match port {
            None => Port::Default,
            Some("*") => Port::Any,
            Some(port) => Port::Exact(
                port.parse()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or(fail("its port is not a number from 1 to 65535"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = match host.strip_prefix("*.") {
            Some(parent) => {
                check_name(parent).map_err(fail)?;
                Host::Subdomains(parent.to_owned())
            }
            None if host.parse::<IpAddr>().is_ok() => Host::Exact(host),
            None => {
                check_name(&host).map_err(fail)?;
                Host::Exact(host)
            }
        };
        Ok(Origin { scheme, host, port })
    }
}

/// Splits `host[:port]` (an IPv6 host in brackets); `None` when a port
/// follows without a colon.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    Some(match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    })
}

fn check_name(name: &str) -> Result<(), &'static str> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(())
    } else if name.contains('*') {
        Err("a wildcard may only be the whole first label (`*.example.org`)")
    } else {
        Err("its host is not a valid name or IP address")
    }
}

impl Origin {
    /// True when a request to `scheme://host:port` is within this origin.
    /// `host` is lower case, an IPv6 address without brackets.
    pub fn allows(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        if scheme != self.scheme {
            return false;
        }
        let port_ok = match self.port {
            Port::Default => port == scheme.default_port(),
            Port::Exact(allowed) => port == allowed,
            Port::Any => true,
        };
        port_ok
            && match &self.host {
                Host::Exact(allowed) => host == allowed,
                Host::Subdomains(parent) => host
                    .strip_suffix(parent.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            }
    }

    /// True when every request this `other` origin allows, this one allows
    /// too (an account's policy covering a node's grant).
    pub fn covers(&self, other: &Origin) -> bool {
        if self.scheme != other.scheme {
            return false;
        }
        let default = self.scheme.default_port();
        let port_ok = match (self.port, other.port) {
            (Port::Any, _) => true,
            (_, Port::Any) => false,
            (mine, theirs) => {
                let number = |port| match port {
                    Port::Exact(port) => port,
                    _ => default,
                };
                number(mine) == number(theirs)
            }
        };
        port_ok
            && match (&self.host, &other.host) {
                (Host::Exact(mine), Host::Exact(theirs)) => mine == theirs,
                (Host::Exact(_), Host::Subdomains(_)) => false,
                (Host::Subdomains(_), Host::Exact(theirs)) => self.subdomain_of_mine(theirs),
                (Host::Subdomains(mine), Host::Subdomains(theirs)) => {
                    theirs == mine || self.subdomain_of_mine(theirs)
                }
            }
    }

    fn subdomain_of_mine(&self, name: &str) -> bool {
        match &self.host {
            Host::Subdomains(parent) => name
                .strip_suffix(parent.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            Host::Exact(_) => false,
        }
    }

    /// The address this origin names literally, if it is an IP address.
    pub fn ip(&self) -> Option<IpAddr> {
        match &self.host {
            Host::Exact(host) => host.parse().ok(),
            Host::Subdomains(_) => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            Host::Exact(host) if host.contains(':') => write!(f, "[{host}]")?,
            Host::Exact(host) => f.write_str(host)?,
            Host::Subdomains(parent) => write!(f, "*.{parent}")?,
        }
        match self.port {
            Port::Default => Ok(()),
            Port::Exact(port) => write!(f, ":{port}"),
            Port::Any => f.write_str(":*"),
        }
    }
}

impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Origin {
        text.parse().unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn exact_origins_allow_their_scheme_host_and_port_only() {
        let api = origin("https://API.example.com/");
        assert!(api.allows(Scheme::Https, "api.example.com", 443));
        assert!(!api.allows(Scheme::Http, "api.example.com", 443));
        assert!(!api.allows(Scheme::Https, "api.example.com", 8443));
        assert!(!api.allows(Scheme::Https, "x.api.example.com", 443));
        assert!(!api.allows(Scheme::Https, "api.example.com.evil.org", 443));
        assert_eq!(api.to_string(), "https://api.example.com");
    }

    #[test]
    fn wildcards_cover_subdomains_and_ports() {
        let any_sub = origin("https://*.example.org:8443");
        assert!(any_sub.allows(Scheme::Https, "a.example.org", 8443));
        assert!(any_sub.allows(Scheme::Https, "a.b.example.org", 8443));
        assert!(!any_sub.allows(Scheme::Https, "example.org", 8443));
        assert!(!any_sub.allows(Scheme::Https, "badexample.org", 8443));
        assert!(!any_sub.allows(Scheme::Https, "a.example.org", 443));
        let any_port = origin("http://127.0.0.1:*");
        assert!(any_port.allows(Scheme::Http, "127.0.0.1", 1));
        assert!(any_port.allows(Scheme::Http, "127.0.0.1", 65535));
        assert_eq!(any_port.ip(), Some("127.0.0.1".parse().unwrap()));
        let v6 = origin("http://[::1]:8080");
        assert!(v6.allows(Scheme::Http, "::1", 8080));
        assert_eq!(v6.to_string(), "http://[::1]:8080");
    }

    #[test]
    fn a_policy_covers_the_grants_within_it() {
        let covers = |policy: &str, grant: &str| origin(policy).covers(&origin(grant));
        assert!(covers(
            "https://api.example.com",
            "https://api.example.com:443"
        ));
        assert!(covers("https://*.example.com", "https://a.example.com"));
        assert!(covers("https://*.example.com", "https://*.a.example.com"));
        assert!(covers(
            "https://*.example.com:*",
            "https://*.example.com:8443"
        ));
        assert!(covers("http://127.0.0.1:*", "http://127.0.0.1:8080"));
        assert!(!covers("https://api.example.com", "https://*.example.com"));
        assert!(!covers("https://*.example.com", "https://example.com"));
        assert!(!covers("https://api.example.com", "http://api.example.com"));
        assert!(!covers(
            "https://api.example.com",
            "https://api.example.com:*"
        ));
        assert!(!covers(
            "https://api.example.com:8443",
            "https://api.example.com"
        ));
    }

    #[test]
    fn malformed_origins_say_what_is_wrong() {
        for (text, why) in [
            ("api.example.com", "no scheme"),
            ("ftp://example.com", "http or https"),
            ("https://example.com/v1", "no path"),
            ("https://user:pw@example.com", "no user name"),
            ("https://example.com:http", "port"),
            ("https://example.com:0", "port"),
            ("https://a.*.example.com", "wildcard"),
            ("https://", "not a valid name"),
            ("https://exa mple.com", "not a valid name"),
        ] {
            let err = text.parse::<Origin>().unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
