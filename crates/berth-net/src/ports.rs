//! Published ports as the user writes them (`-p [IP:][HOSTPORT:]CPORT[/tcp|/udp]`, ranges such as
//! `8000-8010:80-90`, `EXPOSE`'s `80/tcp`), expanded to one mapping per port, and the host-side
//! checks before a port is published: the host port must be free, and a port left to choose is
//! picked from the kernel's ephemeral range.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// "tcp" or "udp".
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A malformed port specification, or a host port that cannot be had.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    /// The text of `-p` or `EXPOSE` is malformed.
    #[error("invalid port specification {spec:?}: {why}")]
    Invalid {
        /// What the user wrote.
        spec: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Something on the host already uses the port.
    #[error("host port {port}/{proto} on {addr} is already in use")]
    InUse {
        /// The address the port was wanted on.
        addr: IpAddr,
        /// The port.
        port: u16,
        /// Its protocol.
        proto: Proto,
    },
    /// No free port could be found for a mapping without a host port.
    #[error("no free host port for {port}/{proto}: {reason}")]
    NoFreePort {
        /// The container port.
        port: u16,
        /// Its protocol.
        proto: Proto,
        /// The last failure.
        reason: String,
    },
}

/// One published port: a host address and port (0 = to be chosen) onto a container port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address it answers on; `None` means every address of the host.
    pub host_ip: Option<IpAddr>,
    /// The host port; 0 until one is chosen.
    pub host_port: u16,
    /// The container port.
    pub container_port: u16,
    /// The protocol.
    pub proto: Proto,
}

impl PortMapping {
    /// Docker's key of the container side: `80/tcp`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_port, self.proto)
    }
}

fn range(spec: &str, s: &str) -> Result<(u16, u16), PortError> {
    let bad = |why| PortError::Invalid {
        spec: spec.to_owned(),
        why,
    };
    let num = |t: &str| -> Result<u16, PortError> {
        match t.parse::<u16>() {
            Ok(0) => Err(bad("port 0 is not a port")),
            Ok(p) => Ok(p),
            Err(_) => Err(bad("ports are numbers from 1 to 65535")),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(bad("a range's end is below its start"));
            }
            Ok((a, b))
        }
        None => {
            let p = num(s)?;
            Ok((p, p))
        }
    }
}

fn proto(spec: &str, s: Option<&str>) -> Result<Proto, PortError> {
    match s.map(|p| p.to_ascii_lowercase()).as_deref() {
        None | Some("tcp") => Ok(Proto::Tcp),
        Some("udp") => Ok(Proto::Udp),
        Some(_) => Err(PortError::Invalid {
            spec: spec.to_owned(),
            why: "the protocol is tcp or udp",
        }),
    }
}

/// Parses one `-p`/`--publish` value into its mappings, one per container port.
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, PortError> {
    let bad = |why| PortError::Invalid {
        spec: spec.to_owned(),
        why,
    };
    let (body, proto_s) = match spec.rsplit_once('/') {
        Some((b, p)) => (b, Some(p)),
        None => (spec, None),
    };
    let proto = proto(spec, proto_s)?;
    // An IPv6 host address is written in brackets: [::1]:8080:80.
    let (ip, rest) = if let Some(r) = body.strip_prefix('[') {
        let (addr, after) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| bad("expected ':' after the address"))?;
        let ip: Ipv6Addr = addr.parse().map_err(|_| bad("not an IPv6 address"))?;
        (Some(IpAddr::V6(ip)), after)
    } else {
        (None, body)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, cont) = match (ip, parts.as_slice()) {
        (None, [c]) => (None, None, *c),
        (None, [h, c]) => (None, Some(*h), *c),
        (None, [a, h, c]) => {
            let ip: IpAddr = a.parse().map_err(|_| bad("not an IP address"))?;
            (Some(ip), Some(*h), *c)
        }
        (Some(ip), [h, c]) => (Some(ip), Some(*h), *c),
        _ => return Err(bad("expected [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]")),
    };
    let (c0, c1) = range(spec, cont)?;
    let host = match host {
        None | Some("") => None,
        Some(h) => Some(range(spec, h)?),
    };
    let count = c1 - c0;
    let mut out = Vec::with_capacity(count as usize + 1);
    match host {
        Some((h0, h1)) if h1 - h0 == count => {
            for i in 0..=count {
                out.push(PortMapping {
                    host_ip: ip,
                    host_port: h0 + i,
                    container_port: c0 + i,
                    proto,
                });
            }
        }
        // Docker: one container port onto a host range takes the first free port of the range;
        // that choice is made at publish time, so the range is kept as its start here.
        Some((h0, _)) if count == 0 => out.push(PortMapping {
            host_ip: ip,
            host_port: h0,
            container_port: c0,
            proto,
        }),
        Some(_) => return Err(bad("the host and container ranges differ in length")),
        None => {
            for p in c0..=c1 {
                out.push(PortMapping {
                    host_ip: ip,
                    host_port: 0,
                    container_port: p,
                    proto,
                });
            }
        }
    }
    Ok(out)
}

/// Parses an image's `EXPOSE` key (`80`, `80/tcp`, `53/udp`, `8000-8002/tcp`) into its ports.
pub fn parse_exposed(key: &str) -> Result<Vec<(u16, Proto)>, PortError> {
    let (body, p) = match key.split_once('/') {
        Some((b, p)) => (b, Some(p)),
        None => (key, None),
    };
    let proto = proto(key, p)?;
    let (a, b) = range(key, body)?;
    Ok((a..=b).map(|port| (port, proto)).collect())
}

/// Fails with [`PortError::InUse`] if a socket on the host already holds `port` on `addr` (`None`:
/// on any address). Checked by binding it for a moment, as the kernel would refuse a listener.
pub fn check_free(addr: Option<IpAddr>, port: u16, proto: Proto) -> Result<(), PortError> {
    let ip = addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    bind(ip, port, proto)
        .map(drop)
        .map_err(|_| PortError::InUse {
            addr: ip,
            port,
            proto,
        })
}

/// A host port for a mapping without one: the kernel's choice of a free ephemeral port, as
/// Docker does.
pub fn pick_free(
    addr: Option<IpAddr>,
    container_port: u16,
    proto: Proto,
) -> Result<u16, PortError> {
    let ip = addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    match bind(ip, 0, proto) {
        Ok(port) => Ok(port),
        Err(e) => Err(PortError::NoFreePort {
            port: container_port,
            proto,
            reason: e.to_string(),
        }),
    }
}

fn bind(ip: IpAddr, port: u16, proto: Proto) -> std::io::Result<u16> {
    let at = SocketAddr::new(ip, port);
    match proto {
        Proto::Tcp => {
            std::net::TcpListener::bind(at).and_then(|l| l.local_addr().map(|a| a.port()))
        }
        Proto::Udp => std::net::UdpSocket::bind(at).and_then(|s| s.local_addr().map(|a| a.port())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ip: Option<&str>, h: u16, c: u16, proto: Proto) -> PortMapping {
        PortMapping {
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_port: h,
            container_port: c,
            proto,
        }
    }

    #[test]
    fn docker_forms_parse() {
        use Proto::*;
        assert_eq!(parse_publish("80").unwrap(), [m(None, 0, 80, Tcp)]);
        assert_eq!(parse_publish("8080:80").unwrap(), [m(None, 8080, 80, Tcp)]);
        assert_eq!(parse_publish("53:53/udp").unwrap(), [m(None, 53, 53, Udp)]);
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/tcp").unwrap(),
            [m(Some("127.0.0.1"), 8080, 80, Tcp)]
        );
        assert_eq!(
            parse_publish("127.0.0.1::80").unwrap(),
            [m(Some("127.0.0.1"), 0, 80, Tcp)]
        );
        assert_eq!(
            parse_publish("[::1]:8080:80").unwrap(),
            [m(Some("::1"), 8080, 80, Tcp)]
        );
        assert_eq!(
            parse_publish("8000-8002:80-82").unwrap(),
            [
                m(None, 8000, 80, Tcp),
                m(None, 8001, 81, Tcp),
                m(None, 8002, 82, Tcp)
            ]
        );
        assert_eq!(
            parse_publish("80-81").unwrap(),
            [m(None, 0, 80, Tcp), m(None, 0, 81, Tcp)]
        );
        assert_eq!(
            parse_publish("8000-8010:80").unwrap(),
            [m(None, 8000, 80, Tcp)]
        );
        assert_eq!(m(None, 1, 80, Udp).key(), "80/udp");
    }

    #[test]
    fn bad_specs_name_what_is_wrong() {
        for (spec, why) in [
            ("0", "port 0 is not a port"),
            ("70000", "ports are numbers from 1 to 65535"),
            ("http", "ports are numbers from 1 to 65535"),
            ("80/sctp", "the protocol is tcp or udp"),
            (
                "8000-8002:80-81",
                "the host and container ranges differ in length",
            ),
            ("90-80", "a range's end is below its start"),
            ("1.2.3:80:80", "not an IP address"),
            ("a:b:c:d", "expected [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]"),
            ("[::1:80:80", "unclosed '['"),
        ] {
            assert_eq!(
                parse_publish(spec).unwrap_err(),
                PortError::Invalid {
                    spec: spec.into(),
                    why
                },
                "{spec}"
            );
        }
    }

    #[test]
    fn exposed_keys_parse() {
        assert_eq!(parse_exposed("80").unwrap(), [(80, Proto::Tcp)]);
        assert_eq!(parse_exposed("53/udp").unwrap(), [(53, Proto::Udp)]);
        assert_eq!(
            parse_exposed("8000-8001/tcp").unwrap(),
            [(8000, Proto::Tcp), (8001, Proto::Tcp)]
        );
        assert!(parse_exposed("x/tcp").is_err());
    }

    #[test]
    fn a_port_held_on_the_host_is_in_use_and_a_picked_one_is_free() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let lo = Some("127.0.0.1".parse().unwrap());
        let e = check_free(lo, port, Proto::Tcp).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("host port {port}/tcp on 127.0.0.1 is already in use")
        );
        drop(held);
        check_free(lo, port, Proto::Tcp).unwrap();
        let p = pick_free(lo, 80, Proto::Udp).unwrap();
        assert!(p > 0);
        check_free(lo, p, Proto::Udp).unwrap();
    }
}
