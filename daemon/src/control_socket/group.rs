//! The group the control socket may be opened by (`--control-group`,
//! `[daemon] control_group`): its name resolved to a gid.

use std::ffi::{CStr, CString};

/// A group allowed on the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// As the operator named it.
    pub name: String,
    /// Its id.
    pub gid: u32,
}

impl Group {
    /// The group called `name` in the system's group database, or, when no
    /// group has that name and it is a number, the group of that id.
    pub fn lookup(name: &str) -> Result<Group, String> {
        if let Some(gid) = gid_of(name)? {
            return Ok(Group {
                name: name.to_owned(),
                gid,
            });
        }
        match name.parse::<u32>() {
            Ok(gid) => Ok(Group {
                name: name.to_owned(),
                gid,
            }),
            Err(_) => Err(format!("no group is called {name:?}")),
        }
    }
}

/// The gid of the group called `name`; `None` if there is none.
fn gid_of(name: &str) -> Result<Option<u32>, String> {
    let c_name =
        CString::new(name).map_err(|_| format!("the group name {name:?} holds a NUL byte"))?;
    let found = read_group(|group, buffer, found| {
        // SAFETY: every pointer is valid for the call, the length is the
        // buffer's.
        unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                group,
                buffer.as_mut_ptr(),
                buffer.len(),
                found,
            )
        }
    });
    // A failed lookup (an unreadable database) is said as such, not as a
    // missing group.
    found
        .map(|group| group.map(|(gid, _)| gid))
        .map_err(|err| format!("cannot look up group {name:?}: {err}"))
}

/// The name of the group `gid`, for messages; `None` if it has none.
pub(crate) fn name_of(gid: u32) -> Option<String> {
    let found = read_group(|group, buffer, found| {
        // SAFETY: as in `gid_of`.
        unsafe { libc::getgrgid_r(gid, group, buffer.as_mut_ptr(), buffer.len(), found) }
    });
    found.ok().flatten().map(|(_, name)| name)
}

/// One `getgr*_r` call, `call`, retried with a larger buffer while the
/// entry does not fit: the group's gid and name, or `None` if there is no
/// such group.
fn read_group(
    mut call: impl FnMut(&mut libc::group, &mut [libc::c_char], &mut *mut libc::group) -> libc::c_int,
) -> std::io::Result<Option<(u32, String)>> {
    let mut buffer = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: a zeroed `group` is a valid out-parameter for getgr*_r.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        match call(&mut group, &mut buffer, &mut found) {
            0 if found.is_null() => return Ok(None),
            0 => {
                // SAFETY: on success gr_name points to a NUL-terminated
                // string inside `buffer`, alive here.
                let name = unsafe { CStr::from_ptr(group.gr_name) };
                return Ok(Some((group.gr_gid, name.to_string_lossy().into_owned())));
            }
            // A group with very many members: a larger buffer, up to a bound.
            libc::ERANGE if buffer.len() < 1 << 20 => buffer.resize(buffer.len() * 4, 0),
            err => return Err(std::io::Error::from_raw_os_error(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_by_name_and_by_number_and_a_missing_group_is_named() {
        assert_eq!(Group::lookup("root").expect("root").gid, 0);
        assert_eq!(name_of(0).as_deref(), Some("root"));
        let numeric = Group::lookup("4242424").expect("a number is a gid");
        assert_eq!(numeric.gid, 4_242_424);
        let err = Group::lookup("no-such-group-obt").expect_err("missing");
        assert!(err.contains("no-such-group-obt"), "{err}");
    }
}
