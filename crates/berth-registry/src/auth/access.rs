//! Access rules: which actions a user (or nobody) may take on which repositories.

use crate::config::AuthConfig;

use super::AuthError;

/// One thing a client may do to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers (GET, HEAD).
    Pull,
    /// Upload blobs and manifests (POST, PUT, PATCH).
    Push,
    /// Delete manifests, tags and blobs (DELETE).
    Delete,
}

impl Action {
    /// Every action, in the order tokens list them.
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The name used in configuration and token scopes.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Action::Pull => 1,
            Action::Push => 2,
            Action::Delete => 4,
        }
    }
}

/// A set of actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actions(u8);

impl Actions {
    /// No action at all.
    pub const NONE: Actions = Actions(0);
    /// Pull, push and delete.
    pub const ALL: Actions = Actions(7);

    /// Just one action.
    pub fn only(a: Action) -> Actions {
        Actions(a.bit())
    }

    /// Whether `a` is in the set.
    pub fn contains(self, a: Action) -> bool {
        self.0 & a.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets together.
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// What both sets share.
    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    /// The actions' names, in [`Action::ALL`] order.
    pub fn names(self) -> Vec<String> {
        Action::ALL
            .into_iter()
            .filter(|a| self.contains(*a))
            .map(|a| a.as_str().to_string())
            .collect()
    }

    /// Parses names (`pull`, `push`, `delete`, or `*` for all); unknown names are returned as
    /// the error.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Actions, &'a str> {
        let mut set = Actions::NONE;
        for n in names {
            set = set.union(match n.trim() {
                "pull" => Actions::only(Action::Pull),
                "push" => Actions::only(Action::Push),
                "delete" => Actions::only(Action::Delete),
                "*" => Actions::ALL,
                _ => return Err(n),
            });
        }
        Ok(set)
    }
}

/// One parsed access rule.
#[derive(Debug)]
struct Rule {
    /// `None` for `*` (every authenticated user).
    user: Option<String>,
    patterns: Vec<String>,
    actions: Actions,
}

/// The whole policy: what anonymous clients may do, and the rules for users.
#[derive(Debug)]
pub struct Policy {
    anonymous: Actions,
    rules: Vec<Rule>,
}

impl Policy {
    /// Builds the policy from the configuration; `has_users` says whether an htpasswd file is
    /// configured (see the module doc of [`crate::auth`] for the semantics).
    pub fn new(config: &AuthConfig, has_users: bool) -> Result<Policy, AuthError> {
        if !has_users {
            if config.anonymous_pull == Some(false) {
                return Err(AuthError::NoUsers {
                    why: "anonymous_pull = false",
                });
            }
            if !config.access.is_empty() {
                return Err(AuthError::NoUsers {
                    why: "access rules",
                });
            }
            return Ok(Policy {
                anonymous: Actions::ALL,
                rules: Vec::new(),
            });
        }
        let anonymous = if config.anonymous_pull.unwrap_or(false) {
            Actions::only(Action::Pull)
        } else {
            Actions::NONE
        };
        let mut rules = Vec::new();
        for (i, r) in config.access.iter().enumerate() {
            let index = i + 1;
            let user = r.user.trim();
            if user.is_empty() {
                return Err(AuthError::Rule {
                    index,
                    why: "user is empty (use \"*\" for every authenticated user)".into(),
                });
            }
            if r.repositories.is_empty() {
                return Err(AuthError::Rule {
                    index,
                    why: "no repository patterns (use [\"*\"] for all)".into(),
                });
            }
            if let Some(p) = r.repositories.iter().find(|p| p.trim().is_empty()) {
                return Err(AuthError::Rule {
                    index,
                    why: format!("empty repository pattern {p:?}"),
                });
            }
            let actions = Actions::parse(r.actions.iter().map(String::as_str)).map_err(|bad| {
                AuthError::Rule {
                    index,
                    why: format!("unknown action {bad:?} (expected pull, push, delete or *)"),
                }
            })?;
            rules.push(Rule {
                user: (user != "*").then(|| user.to_string()),
                patterns: r
                    .repositories
                    .iter()
                    .map(|p| p.trim().to_string())
                    .collect(),
                actions,
            });
        }
        if rules.is_empty() {
            rules.push(Rule {
                user: None,
                patterns: vec!["*".into()],
                actions: Actions::ALL,
            });
        }
        Ok(Policy { anonymous, rules })
    }

    /// Whether clients without credentials may pull (and so see the catalog, search and pages).
    pub fn anonymous_pull(&self) -> bool {
        self.anonymous.contains(Action::Pull)
    }

    /// User names that rules mention by name (for warnings about unknown users).
    pub fn named_users(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(|r| r.user.as_deref())
    }

    /// What `user` (`None`: anonymous) may do on `repository`: the anonymous rights plus every
    /// matching rule's actions.
    pub fn allowed(&self, user: Option<&str>, repository: &str) -> Actions {
        let mut set = self.anonymous;
        let Some(user) = user else {
            return set;
        };
        for r in &self.rules {
            let user_matches = r.user.as_deref().is_none_or(|u| u == user);
            if user_matches && r.patterns.iter().any(|p| glob_match(p, repository)) {
                set = set.union(r.actions);
            }
        }
        set
    }
}

/// Matches a repository name against a pattern in which `*` stands for any run of characters,
/// `/` included (`team/*` matches `team/a` and `team/a/b`); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and which text position it is currently assumed to end at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AccessRule;

    fn rule(user: &str, repos: &[&str], actions: &[&str]) -> AccessRule {
        AccessRule {
            user: user.into(),
            repositories: repos.iter().map(|s| s.to_string()).collect(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn glob_star_crosses_slashes() {
        assert!(glob_match("*", "a/b/c"));
        assert!(glob_match("team/*", "team/a"));
        assert!(glob_match("team/*", "team/a/b"));
        assert!(!glob_match("team/*", "teams/a"));
        assert!(!glob_match("team/*", "team"));
        assert!(glob_match("*/app", "x/y/app"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("lib", "lib"));
        assert!(!glob_match("lib", "library"));
        assert!(glob_match("**", ""));
    }

    #[test]
    fn without_users_anonymous_may_do_everything() {
        let p = Policy::new(&AuthConfig::default(), false).unwrap();
        assert_eq!(p.allowed(None, "x"), Actions::ALL);
        assert!(p.anonymous_pull());
    }

    #[test]
    fn without_users_closing_anonymous_pull_is_refused() {
        let c = AuthConfig {
            anonymous_pull: Some(false),
            ..AuthConfig::default()
        };
        let e = Policy::new(&c, false).unwrap_err();
        assert!(e.to_string().contains("anonymous_pull"), "{e}");
        let c = AuthConfig {
            access: vec![rule("*", &["*"], &["pull"])],
            ..AuthConfig::default()
        };
        assert!(Policy::new(&c, false).is_err());
    }

    #[test]
    fn with_users_and_no_rules_users_may_do_everything_and_anonymous_nothing() {
        let p = Policy::new(&AuthConfig::default(), true).unwrap();
        assert_eq!(p.allowed(None, "x"), Actions::NONE);
        assert!(!p.anonymous_pull());
        assert_eq!(p.allowed(Some("alice"), "x/y"), Actions::ALL);
    }

    #[test]
    fn rules_grant_the_union_of_matches_plus_anonymous_pull() {
        let c = AuthConfig {
            anonymous_pull: Some(true),
            access: vec![
                rule("alice", &["team/*"], &["push"]),
                rule("*", &["public/*", "lib"], &["pull", "push"]),
                rule("admin", &["*"], &["*"]),
            ],
            ..AuthConfig::default()
        };
        let p = Policy::new(&c, true).unwrap();
        let pull = Actions::only(Action::Pull);
        let push = Actions::only(Action::Push);
        assert_eq!(p.allowed(None, "team/a"), pull);
        assert_eq!(p.allowed(Some("alice"), "team/a"), pull.union(push));
        assert_eq!(p.allowed(Some("alice"), "other"), pull);
        assert_eq!(p.allowed(Some("bob"), "lib"), pull.union(push));
        assert_eq!(p.allowed(Some("bob"), "team/a"), pull);
        assert_eq!(p.allowed(Some("admin"), "anything"), Actions::ALL);
    }

    #[test]
    fn bad_rules_are_refused_with_their_number() {
        let c = AuthConfig {
            access: vec![rule("a", &["*"], &["pull"]), rule("b", &["*"], &["write"])],
            ..AuthConfig::default()
        };
        let e = Policy::new(&c, true).unwrap_err().to_string();
        assert!(e.contains("rule 2") && e.contains("write"), "{e}");
        let c = AuthConfig {
            access: vec![rule("a", &[], &["pull"])],
            ..AuthConfig::default()
        };
        assert!(Policy::new(&c, true).is_err());
    }

    #[test]
    fn actions_parse_and_name() {
        assert_eq!(Actions::parse(["*"]).unwrap(), Actions::ALL);
        assert_eq!(
            Actions::parse(["push", "pull"]).unwrap().names(),
            vec!["pull", "push"]
        );
        assert_eq!(Actions::parse(["nope"]).unwrap_err(), "nope");
    }
}
