//! The text of a container's `/etc/hosts` and `/etc/resolv.conf`, as Docker lays them out.

use std::net::IpAddr;

/// A container's `/etc/hosts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsFile {
    /// The container's host name.
    pub hostname: String,
    /// Its domain name, if any (`hostname.domain hostname`).
    pub domainname: Option<String>,
    /// Its own addresses (each gets the host name).
    pub addrs: Vec<IpAddr>,
    /// `--add-host` and `--link` entries: names (space-separated) and address.
    pub extra: Vec<(String, IpAddr)>,
    /// Whether to write the IPv6 loopback and multicast names.
    pub ipv6: bool,
}

impl HostsFile {
    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::from("127.0.0.1\tlocalhost\n");
        if self.ipv6 {
            s.push_str(
                "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
            );
        }
        for (names, ip) in &self.extra {
            s.push_str(&format!("{ip}\t{names}\n"));
        }
        let names = match &self.domainname {
            Some(d) if !d.is_empty() => format!("{}.{d}\t{}", self.hostname, self.hostname),
            _ => self.hostname.clone(),
        };
        for a in &self.addrs {
            s.push_str(&format!("{a}\t{names}\n"));
        }
        s
    }
}

/// A `/etc/resolv.conf`: its nameservers, search domains and options (other lines are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines.
    pub nameservers: Vec<IpAddr>,
    /// `search` (or `domain`) domains.
    pub search: Vec<String>,
    /// `options`.
    pub options: Vec<String>,
}

/// Docker's resolvers for a container whose host has only loopback ones.
const FALLBACK: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

impl ResolvConf {
    /// Parses the lines berth keeps; anything else, and comments, are ignored.
    pub fn parse(text: &str) -> ResolvConf {
        let mut r = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A scoped IPv6 address (fe80::1%eth0) names a link the container lacks.
                    if let Some(Ok(a)) = words.next().map(|w| w.parse::<IpAddr>()) {
                        r.nameservers.push(a);
                    }
                }
                Some("search") | Some("domain") => r.search = words.map(str::to_owned).collect(),
                Some("options") => r.options.extend(words.map(str::to_owned)),
                _ => {}
            }
        }
        r
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for n in &self.nameservers {
            s.push_str(&format!("nameserver {n}\n"));
        }
        if !self.search.is_empty() {
            s.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }

    /// A container's file on a network without the embedded server: `dns`, `search` and
    /// `options` where given, the host's otherwise, without the host's loopback resolvers (they do
    /// not answer inside the container's namespace); none left, Docker's public fallback.
    pub fn for_container(
        host: &ResolvConf,
        dns: &[IpAddr],
        search: &[String],
        options: &[String],
    ) -> ResolvConf {
        let mut nameservers: Vec<IpAddr> = if dns.is_empty() {
            host.nameservers
                .iter()
                .copied()
                .filter(|a| !a.is_loopback())
                .collect()
        } else {
            dns.to_vec()
        };
        if nameservers.is_empty() {
            nameservers = FALLBACK.iter().map(|a| a.parse().unwrap()).collect();
        }
        ResolvConf {
            nameservers,
            search: if search.is_empty() {
                host.search.clone()
            } else {
                search.to_vec()
            },
            options: if options.is_empty() {
                host.options.clone()
            } else {
                options.to_vec()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follows_dockers_layout() {
        let h = HostsFile {
            hostname: "web".into(),
            domainname: None,
            addrs: vec!["172.17.0.2".parse().unwrap()],
            extra: vec![("db 0123456789ab".into(), "172.17.0.3".parse().unwrap())],
            ipv6: true,
        };
        assert_eq!(
            h.render(),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n172.17.0.3\tdb 0123456789ab\n172.17.0.2\tweb\n"
        );
        let d = HostsFile {
            hostname: "web".into(),
            domainname: Some("example.org".into()),
            addrs: vec!["10.0.0.2".parse().unwrap()],
            ..Default::default()
        };
        assert_eq!(
            d.render(),
            "127.0.0.1\tlocalhost\n10.0.0.2\tweb.example.org\tweb\n"
        );
    }

    #[test]
    fn resolv_conf_drops_loopback_resolvers_and_takes_overrides() {
        let host = ResolvConf::parse(
            "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.1 ; office\nnameserver fe80::1%eth0\nsearch corp.example lab\noptions edns0 ndots:2\nsortlist 10.0.0.0\n",
        );
        assert_eq!(
            host.nameservers,
            vec![
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "10.0.0.1".parse().unwrap()
            ]
        );
        let c = ResolvConf::for_container(&host, &[], &[], &[]);
        assert_eq!(
            c.render(),
            "nameserver 10.0.0.1\nsearch corp.example lab\noptions edns0 ndots:2\n"
        );
        let only_lo = ResolvConf::parse("nameserver 127.0.0.53\n");
        assert_eq!(
            ResolvConf::for_container(&only_lo, &[], &[], &[]).render(),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let o = ResolvConf::for_container(
            &host,
            &["1.1.1.1".parse().unwrap()],
            &["x.test".into()],
            &["rotate".into()],
        );
        assert_eq!(
            o.render(),
            "nameserver 1.1.1.1\nsearch x.test\noptions rotate\n"
        );
    }
}
