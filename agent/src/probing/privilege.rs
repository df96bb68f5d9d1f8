//! Giving up privileges once the raw sockets are open.
//!
//! The agent runs on strangers' servers, so it keeps as little power as it can:
//! after [`crate::probing::sockets::RawSockets::open`] it calls [`drop_privileges`], which
//! leaves the process with no capability but `CAP_NET_RAW` (in the effective and
//! permitted sets; nothing inheritable, nothing ambient, and — when the process
//! may change it — nothing else in the bounding set), switches from root to an
//! unprivileged user, and sets `no_new_privs` so no exec can win anything back.
//! It then checks the result and refuses to go on if anything else is left.

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};

use super::accounts;

/// The user the agent becomes when started as root, unless told otherwise.
pub const DEFAULT_USER: &str = "nobody";

/// Why the privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The user to switch to does not exist.
    #[error(
        "user '{0}' is not in /etc/passwd; create it, or pass --user NAME of an unprivileged \
         account, or its numeric UID[:GID]"
    )]
    NoSuchUser(String),
    /// The user to switch to is root itself.
    #[error(
        "refusing to run as user '{0}': it has uid 0; pass --user NAME of an unprivileged account"
    )]
    RootUser(String),
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The errno.
        source: nix::Error,
    },
    /// A capability operation failed.
    #[error("{op} failed: {source}")]
    Caps {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: caps::errors::CapsError,
    },
    /// Something is left after the drop.
    #[error("still privileged after dropping privileges: {0}")]
    StillPrivileged(String),
}

fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> PrivilegeError {
    move |source| PrivilegeError::Sys { op, source }
}

fn caps_err(op: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivilegeError {
    move |source| PrivilegeError::Caps { op, source }
}

/// What the process holds after [`drop_privileges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The real, effective and saved uid.
    pub uid: u32,
    /// Whether the bounding set could be narrowed too.
    pub bounding_narrowed: bool,
}

/// Drops to `user` (when root) and to `CAP_NET_RAW` alone. Call once, after
/// every socket is open and before anything reads input from the network.
pub fn drop_privileges(user: &str) -> Result<Dropped, PrivilegeError> {
    let keep: CapsHashSet = [Capability::CAP_NET_RAW].into_iter().collect();

    // The bounding set can only shrink while CAP_SETPCAP is effective, so do it first.
    let bounding_narrowed = narrow_bounding_set(&keep)?;

    if Uid::current().is_root() || Uid::effective().is_root() {
        become_user(user)?;
    }

    // Whatever we were started with, keep only CAP_NET_RAW — and only if we had it.
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(caps_err("reading permitted capabilities"))?;
    let kept: CapsHashSet = permitted.intersection(&keep).copied().collect();
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clearing ambient capabilities"))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .map_err(caps_err("clearing inheritable capabilities"))?;
    caps::set(None, CapSet::Effective, &kept)
        .map_err(caps_err("setting effective capabilities"))?;
    caps::set(None, CapSet::Permitted, &kept)
        .map_err(caps_err("setting permitted capabilities"))?;
    nix::sys::prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;

    verify(&keep)?;
    Ok(Dropped {
        uid: Uid::current().as_raw(),
        bounding_narrowed,
    })
}

fn narrow_bounding_set(keep: &CapsHashSet) -> Result<bool, PrivilegeError> {
    let bounding =
        caps::read(None, CapSet::Bounding).map_err(caps_err("reading the bounding set"))?;
    if bounding.is_subset(keep) {
        return Ok(true);
    }
    let can = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(caps_err("reading effective capabilities"))?;
    if !can {
        return Ok(false);
    }
    for cap in bounding.difference(keep) {
        caps::drop(None, CapSet::Bounding, *cap)
            .map_err(caps_err("dropping from the bounding set"))?;
    }
    Ok(true)
}

fn become_user(name: &str) -> Result<(), PrivilegeError> {
    let account =
        accounts::resolve(name).ok_or_else(|| PrivilegeError::NoSuchUser(name.to_owned()))?;
    let (uid, gid) = (Uid::from_raw(account.uid), Gid::from_raw(account.gid));
    if uid.is_root() {
        return Err(PrivilegeError::RootUser(name.to_owned()));
    }
    // Keep the permitted set across the uid change; effective is cleared by it.
    nix::sys::prctl::set_keepcaps(true).map_err(sys("prctl(PR_SET_KEEPCAPS)"))?;
    nix::unistd::setgroups(&[]).map_err(sys("setgroups"))?;
    set_ids(gid, uid)?;
    nix::sys::prctl::set_keepcaps(false).map_err(sys("prctl(PR_SET_KEEPCAPS)"))?;
    Ok(())
}

fn set_ids(gid: Gid, uid: Uid) -> Result<(), PrivilegeError> {
    nix::unistd::setresgid(gid, gid, gid).map_err(sys("setresgid"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(sys("setresuid"))?;
    Ok(())
}

fn verify(keep: &CapsHashSet) -> Result<(), PrivilegeError> {
    if Uid::current().is_root() || Uid::effective().is_root() {
        return Err(PrivilegeError::StillPrivileged("uid 0".into()));
    }
    for set in [
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
        CapSet::Ambient,
    ] {
        let held = caps::read(None, set).map_err(caps_err("reading capabilities"))?;
        let extra: Vec<String> = held.difference(keep).map(ToString::to_string).collect();
        if !extra.is_empty() {
            return Err(PrivilegeError::StillPrivileged(format!(
                "{set:?}: {}",
                extra.join(", ")
            )));
        }
    }
    Ok(())
}
