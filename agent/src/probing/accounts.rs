//! Looking up the unprivileged account the agent becomes, without glibc's NSS.
//!
//! The agent ships as a static binary; a statically linked glibc cannot load NSS modules
//! (`getpwnam` would need the very glibc version it was built with). So a user is named
//! either by its numeric id (`"65534"`, or `"65534:65534"` with a group) or by a name found
//! in `/etc/passwd`, read here. Accounts only a directory service knows (LDAP, systemd's
//! dynamic users) are named by number.

use std::path::Path;

/// The password file read for names.
pub const PASSWD: &str = "/etc/passwd";

/// An account: its ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

/// The account `user` names: `UID`, `UID:GID` or a name in `passwd` (the file's text).
/// A bare uid takes its group from `passwd` when listed there, else the same number.
pub fn resolve_in(user: &str, passwd: &str) -> Option<Account> {
    if let Some((uid, gid)) = user.split_once(':') {
        return Some(Account {
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
        });
    }
    let entries = passwd.lines().filter_map(parse_entry);
    if let Ok(uid) = user.parse::<u32>() {
        let gid = entries
            .into_iter()
            .find(|(_, a)| a.uid == uid)
            .map_or(uid, |(_, a)| a.gid);
        return Some(Account { uid, gid });
    }
    entries
        .into_iter()
        .find(|(name, _)| *name == user)
        .map(|(_, a)| a)
}

/// The account `user` names, reading [`PASSWD`] for names (a missing file: numbers only).
pub fn resolve(user: &str) -> Option<Account> {
    let passwd = std::fs::read_to_string(Path::new(PASSWD)).unwrap_or_default();
    resolve_in(user, &passwd)
}

/// `name:password:uid:gid:...`; comments and malformed lines give `None`.
fn parse_entry(line: &str) -> Option<(&str, Account)> {
    let mut fields = line.split(':');
    let name = fields
        .next()
        .filter(|n| !n.is_empty() && !n.starts_with('#'))?;
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some((name, Account { uid, gid }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        broken line\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        nkpath:x:998:997::/var/lib/nkpath:/usr/sbin/nologin\n";

    #[test]
    fn names_numbers_and_pairs_resolve_without_nss() {
        let a = |uid, gid| Some(Account { uid, gid });
        assert_eq!(resolve_in("nkpath", PASSWD_TEXT), a(998, 997));
        assert_eq!(resolve_in("nobody", PASSWD_TEXT), a(65534, 65534));
        assert_eq!(resolve_in("998", PASSWD_TEXT), a(998, 997));
        assert_eq!(resolve_in("4242", PASSWD_TEXT), a(4242, 4242));
        assert_eq!(resolve_in("4242:100", ""), a(4242, 100));
        assert_eq!(resolve_in("nkpath", ""), None);
        assert_eq!(resolve_in("ghost", PASSWD_TEXT), None);
        assert_eq!(resolve_in("1:x", PASSWD_TEXT), None);
    }
}
