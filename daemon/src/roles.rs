//! Officer roles on the control socket, from Unix groups.
//!
//! The kernel vouches for the caller's uid (SO_PEERCRED). Its login name
//! and group memberships come from the system's user database (NSS), so a
//! role follows the groups an admin put the user in, whatever groups the
//! calling process happens to hold. The daemon's own user and root are
//! administrators. What each role may ask is the model's
//! ([`outpost_model::api::Request::needs`]).

use std::collections::BTreeSet;
use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User};
use outpost_model::api::{ApiError, ErrorKind, Request, Role};

use crate::writer::Caller;

/// Which Unix group grants which role (`[roles]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGroups {
    pub officer: String,
    pub supervisor: String,
    pub auditor: String,
}

impl Default for RoleGroups {
    fn default() -> Self {
        Self { officer: "outpost".into(), supervisor: "outpost-supervisor".into(), auditor: "outpost-audit".into() }
    }
}

/// Who is calling: its login name and its roles.
pub fn caller(uid: u32, gid: u32, pid: Option<i32>, groups: &RoleGroups) -> Caller {
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
    let name = user.as_ref().map_or_else(|| format!("uid {uid}"), |u| u.name.clone());
    let mut roles = BTreeSet::new();
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
        roles.insert(Role::Admin);
    } else if let Some(user) = &user {
        let member_of: BTreeSet<u32> = CString::new(user.name.as_str())
            .ok()
            .and_then(|c| nix::unistd::getgrouplist(&c, Gid::from_raw(gid)).ok())
            .map(|gids| gids.into_iter().map(Gid::as_raw).collect())
            .unwrap_or_else(|| BTreeSet::from([gid]));
        let has =
            |group: &str| Group::from_name(group).ok().flatten().is_some_and(|g| member_of.contains(&g.gid.as_raw()));
        for (role, group) in
            [(Role::Officer, &groups.officer), (Role::Supervisor, &groups.supervisor), (Role::Auditor, &groups.auditor)]
        {
            if has(group) {
                roles.insert(role);
            }
        }
    }
    Caller { uid, pid, user: name, roles, acting: None }
}

/// The caller, acting under the role `request` needs; or why not.
pub fn authorise(caller: &Caller, request: &Request, groups: &RoleGroups) -> Result<Caller, ApiError> {
    let acting = if caller.roles.contains(&Role::Admin) {
        Role::Admin
    } else {
        match request.needs() {
            None => caller.roles.iter().next().copied().unwrap_or(Role::Officer),
            Some(role) if caller.roles.contains(&role) => role,
            Some(role) => {
                let group = match role {
                    Role::Officer => &groups.officer,
                    Role::Supervisor => &groups.supervisor,
                    Role::Auditor => &groups.auditor,
                    Role::Admin => "root",
                };
                let held: Vec<&str> = caller.roles.iter().map(Role::as_str).collect();
                return Err(ApiError::new(
                    ErrorKind::Forbidden,
                    format!(
                        "not permitted: this needs the role {} (membership of group {group}); {} has {}",
                        role.as_str(),
                        caller.user,
                        if held.is_empty() {
                            "no role".to_string()
                        } else {
                            format!("the role(s) {}", held.join(", "))
                        }
                    ),
                ));
            }
        }
    };
    Ok(Caller { acting: Some(acting), ..caller.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn officer() -> Caller {
        Caller { uid: 1000, pid: None, user: "aigerim".into(), roles: BTreeSet::from([Role::Officer]), acting: None }
    }

    #[test]
    fn a_request_outside_the_callers_roles_says_which_role_it_needs() {
        let groups = RoleGroups::default();
        let search = Request::WatchlistSearch(Box::default());
        assert_eq!(authorise(&officer(), &search, &groups).unwrap().acting, Some(Role::Officer));
        let close = Request::WatchlistSetStatus { id: "x".into(), status: "closed".into(), reason: "r".into() };
        let err = authorise(&officer(), &close, &groups).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden);
        assert!(err.message.contains("supervisor") && err.message.contains("outpost-supervisor"), "{}", err.message);
        let audit = Request::Audit { since: None, limit: None, post: None };
        assert!(authorise(&officer(), &audit, &groups).unwrap_err().message.contains("auditor"));
    }

    #[test]
    fn root_and_the_daemons_own_user_are_administrators() {
        let root = caller(0, 0, None, &RoleGroups::default());
        assert!(root.roles.contains(&Role::Admin));
        let audit = Request::Audit { since: None, limit: None, post: None };
        assert_eq!(authorise(&root, &audit, &RoleGroups::default()).unwrap().acting, Some(Role::Admin));
        let me = caller(nix::unistd::geteuid().as_raw(), 0, None, &RoleGroups::default());
        assert!(me.roles.contains(&Role::Admin));
    }
}
