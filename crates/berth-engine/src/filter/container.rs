//! `ps --filter`: Docker's container keys, over what the engine records.

use super::{FilterError, Filters, LabelMatch, Pattern};
use crate::engine::ContainerSummary;
use crate::record::Status;
use std::collections::HashSet;

/// The keys Docker's `ps` accepts that berth can answer.
const ACCEPTED: &[&str] = &[
    "id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume", "network",
];

/// Docker's other `ps` keys, and what berth lacks to answer them.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("health", "berth has no healthchecks"),
    ("publish", "berth does not publish ports"),
    ("expose", "berth does not record exposed ports"),
    ("is-task", "berth has no swarm tasks"),
];

/// Docker's container states, which `status=` accepts (berth never reports some of them).
const STATES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// A validated `ps` filter. Names given to `ancestor`, `before` and `since` are resolved by the
/// engine when it lists ([`crate::Engine::list_containers`]).
#[derive(Debug, Clone, Default)]
pub struct ContainerFilter {
    ids: Vec<Pattern>,
    names: Vec<Pattern>,
    labels: Vec<LabelMatch>,
    statuses: Vec<String>,
    exited: Vec<i32>,
    ancestors: Vec<String>,
    before: Option<String>,
    since: Option<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

/// What the engine found for the names a filter holds.
#[derive(Debug, Default)]
pub(crate) struct Anchors {
    /// Image ids (`sha256:…`) that `ancestor=` values name.
    pub ancestor_ids: HashSet<String>,
    /// Creation time (ns) of the `before=` container.
    pub before: Option<i128>,
    /// Creation time (ns) of the `since=` container.
    pub since: Option<i128>,
}

impl ContainerFilter {
    /// Checks `f` against Docker's `ps` keys and values.
    pub fn new(f: &Filters) -> Result<ContainerFilter, FilterError> {
        f.validate(ACCEPTED, UNSUPPORTED)?;
        let invalid = |key: &str, value: &str| FilterError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        let mut statuses = Vec::new();
        for s in f.get("status") {
            if !STATES.contains(&s) {
                return Err(invalid("status", s));
            }
            statuses.push(s.to_owned());
        }
        let mut exited = Vec::new();
        for e in f.get("exited") {
            exited.push(e.parse::<i32>().map_err(|_| invalid("exited", e))?);
        }
        Ok(ContainerFilter {
            ids: f.get("id").map(Pattern::new).collect(),
            names: f.get("name").map(Pattern::new).collect(),
            labels: f.get("label").map(LabelMatch::parse).collect(),
            statuses,
            exited,
            ancestors: f.get("ancestor").map(str::to_owned).collect(),
            before: f.one("before")?.map(str::to_owned),
            since: f.one("since")?.map(str::to_owned),
            volumes: f.get("volume").map(str::to_owned).collect(),
            networks: f.get("network").map(str::to_owned).collect(),
        })
    }

    /// From CLI `key=value` arguments.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<ContainerFilter, FilterError> {
        ContainerFilter::new(&Filters::from_args(args)?)
    }

    /// Whether the filter reaches stopped containers even without `--all`: Docker's `status`,
    /// `before` and `since` do.
    pub fn implies_all(&self) -> bool {
        !self.statuses.is_empty() || self.before.is_some() || self.since.is_some()
    }

    /// The `ancestor=` values, for the engine to resolve to image ids.
    pub(crate) fn ancestors(&self) -> &[String] {
        &self.ancestors
    }

    /// The `before=` and `since=` containers, for the engine to resolve.
    pub(crate) fn before_since(&self) -> (Option<&str>, Option<&str>) {
        (self.before.as_deref(), self.since.as_deref())
    }

    /// Whether `c` passes, given what the engine resolved.
    pub(crate) fn matches(&self, c: &ContainerSummary, anchors: &Anchors) -> bool {
        let rec = &c.record;
        let any = |set: &[Pattern], s: &str| set.is_empty() || set.iter().any(|p| p.matches(s));
        if !any(&self.ids, &rec.id) {
            return false;
        }
        if !self.names.is_empty()
            && !self
                .names
                .iter()
                .any(|p| p.matches(&rec.name) || p.matches(rec.short_name()))
        {
            return false;
        }
        let labels = &rec.config.labels;
        if !self
            .labels
            .iter()
            .all(|l| l.holds(|k| labels.get(k).map(String::as_str)))
        {
            return false;
        }
        if !self.statuses.is_empty() && !self.statuses.iter().any(|s| s == c.state.status.as_str())
        {
            return false;
        }
        if !self.exited.is_empty() {
            let ran = c.state.status == Status::Exited && !c.state.running;
            if !ran || !self.exited.contains(&c.state.exit_code) {
                return false;
            }
        }
        if !self.ancestors.is_empty() && !anchors.ancestor_ids.contains(&rec.image) {
            return false;
        }
        let created = crate::time::parse_rfc3339(&rec.created);
        if self.before.is_some()
            && !matches!((created, anchors.before), (Some(c), Some(b)) if c < b)
        {
            return false;
        }
        if self.since.is_some() && !matches!((created, anchors.since), (Some(c), Some(s)) if c > s)
        {
            return false;
        }
        if !self.volumes.is_empty()
            && !rec
                .mounts
                .iter()
                .any(|m| self.volumes.contains(&m.destination))
        {
            return false;
        }
        if !self.networks.is_empty()
            && !self.networks.contains(&rec.host_config.network_mode)
            && !rec
                .networking_config
                .endpoints_config
                .iter()
                .any(|e| self.networks.contains(&e.network))
        {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ContainerConfig, ContainerRecord, HostConfig, MountPoint, State};

    fn summary(id: char, name: &str, created: &str, status: Status, code: i32) -> ContainerSummary {
        let mut state = State::created();
        state.status = status;
        state.running = status == Status::Running;
        state.exit_code = code;
        let mut config = ContainerConfig::default();
        config.labels.insert("app".into(), name.into());
        let tier = if name.starts_with("web") {
            "web"
        } else {
            "data"
        };
        config.labels.insert("tier".into(), tier.into());
        ContainerSummary {
            record: ContainerRecord {
                id: id.to_string().repeat(64),
                created: created.into(),
                path: "sh".into(),
                args: vec![],
                image: format!("sha256:{}", id.to_string().repeat(64)),
                name: format!("/{name}"),
                config,
                host_config: HostConfig {
                    network_mode: "none".into(),
                    ..Default::default()
                },
                mounts: vec![MountPoint {
                    kind: "tmpfs".into(),
                    source: String::new(),
                    destination: format!("/{name}-data"),
                    mode: String::new(),
                    rw: true,
                }],
                networking_config: Default::default(),
            },
            state,
        }
    }

    fn three() -> Vec<ContainerSummary> {
        vec![
            summary(
                'a',
                "web-1",
                "2026-01-01T00:00:01.000000000Z",
                Status::Running,
                0,
            ),
            summary(
                'b',
                "web-2",
                "2026-01-01T00:00:02.000000000Z",
                Status::Exited,
                3,
            ),
            summary(
                'c',
                "db",
                "2026-01-01T00:00:03.000000000Z",
                Status::Created,
                0,
            ),
        ]
    }

    /// Names of the containers of [`three`] that `args` keeps.
    fn keep(args: &[&str], anchors: &Anchors) -> Vec<String> {
        let f = ContainerFilter::from_args(args).unwrap();
        three()
            .into_iter()
            .filter(|c| f.matches(c, anchors))
            .map(|c| c.record.short_name().to_owned())
            .collect()
    }

    fn none() -> Anchors {
        Anchors::default()
    }

    #[test]
    fn no_filter_keeps_everything() {
        assert_eq!(keep(&[], &none()), ["web-1", "web-2", "db"]);
        assert!(
            !ContainerFilter::from_args::<&str>(&[])
                .unwrap()
                .implies_all()
        );
    }

    #[test]
    fn names_and_ids_match_as_docker_does() {
        assert_eq!(keep(&["name=web"], &none()), ["web-1", "web-2"]);
        assert_eq!(keep(&["name=^/db$"], &none()), ["db"]);
        assert_eq!(keep(&["name=^db"], &none()), ["db"]);
        assert_eq!(keep(&["name=/web-1"], &none()), ["web-1"]);
        assert_eq!(keep(&["name=web-1", "name=db"], &none()), ["web-1", "db"]);
        assert_eq!(keep(&["id=bbbb"], &none()), ["web-2"]);
        assert_eq!(keep(&["id=^c"], &none()), ["db"]);
        assert_eq!(keep(&["id=zz"], &none()), Vec::<String>::new());
    }

    #[test]
    fn labels_are_all_required() {
        assert_eq!(keep(&["label=tier=web"], &none()), ["web-1", "web-2"]);
        assert_eq!(keep(&["label=tier"], &none()), ["web-1", "web-2", "db"]);
        assert_eq!(keep(&["label=tier", "label=app=db"], &none()), ["db"]);
        assert_eq!(keep(&["label=app=nope"], &none()), Vec::<String>::new());
    }

    #[test]
    fn status_and_exited() {
        assert_eq!(keep(&["status=running"], &none()), ["web-1"]);
        assert_eq!(
            keep(&["status=running", "status=created"], &none()),
            ["web-1", "db"]
        );
        assert_eq!(keep(&["status=paused"], &none()), Vec::<String>::new());
        assert_eq!(keep(&["exited=3"], &none()), ["web-2"]);
        assert_eq!(keep(&["exited=0"], &none()), Vec::<String>::new());
        assert_eq!(keep(&["exited=3", "exited=0"], &none()), ["web-2"]);
        // Different keys AND.
        assert_eq!(keep(&["name=web", "status=exited"], &none()), ["web-2"]);
        assert!(
            ContainerFilter::from_args(&["status=exited"])
                .unwrap()
                .implies_all()
        );
        assert!(
            !ContainerFilter::from_args(&["exited=1"])
                .unwrap()
                .implies_all()
        );
    }

    #[test]
    fn ancestors_before_and_since_use_what_the_engine_resolved() {
        let mut a = none();
        a.ancestor_ids.insert(format!("sha256:{}", "b".repeat(64)));
        assert_eq!(keep(&["ancestor=bb"], &a), ["web-2"]);
        assert_eq!(
            keep(&["ancestor=missing"], &none()),
            Vec::<String>::new(),
            "an ancestor that names no image matches nothing"
        );
        let web2 = crate::time::parse_rfc3339("2026-01-01T00:00:02.000000000Z");
        let a = Anchors {
            before: web2,
            since: None,
            ..none()
        };
        assert_eq!(keep(&["before=web-2"], &a), ["web-1"]);
        let a = Anchors {
            since: web2,
            ..none()
        };
        assert_eq!(keep(&["since=web-2"], &a), ["db"]);
        assert!(
            ContainerFilter::from_args(&["since=x"])
                .unwrap()
                .implies_all()
        );
    }

    #[test]
    fn volumes_and_networks() {
        assert_eq!(keep(&["volume=/db-data"], &none()), ["db"]);
        assert_eq!(keep(&["network=none"], &none()).len(), 3);
        assert_eq!(keep(&["network=host"], &none()), Vec::<String>::new());
    }

    #[test]
    fn bad_filters_say_what_docker_says() {
        let err = |a: &[&str]| ContainerFilter::from_args(a).unwrap_err().to_string();
        assert_eq!(err(&["bogus=1"]), "invalid filter 'bogus'");
        assert_eq!(
            err(&["status=sleeping"]),
            "invalid filter 'status=sleeping'"
        );
        assert_eq!(err(&["exited=x"]), "invalid filter 'exited=x'");
        assert_eq!(
            err(&["before=a", "before=b"]),
            "filter 'before' takes one value"
        );
        assert!(err(&["health=healthy"]).contains("not supported"));
        assert!(err(&["nokey"]).starts_with("bad format of filter"));
    }
}
