//! `--set section.key=value`: a comparison on a changed profile.
//!
//! The changed profile is written out as a complete TOML file and handed to
//! every mock by its path, exactly as a `--profile FILE` would be: the mock
//! of a cloudlet and the monolith's mock get the same file, and nothing in
//! them learns which parameters were changed or why.

use std::path::Path;

use anyhow::{Context, Result};

use crate::compare::CompareArgs;

/// File name of the effective profile in a comparison's output directory.
pub const FILE: &str = "profile.toml";

/// `args` unchanged when it sets nothing; else with `profile` pointing at
/// `OUT/profile.toml`, the profile with every `--set` applied (validated),
/// and `set` emptied.
pub fn apply(mut args: CompareArgs) -> Result<CompareArgs> {
    if args.set.is_empty() {
        return Ok(args);
    }
    let path = write(&args.profile, &args.set, &args.out)?;
    args.profile = path;
    args.set.clear();
    Ok(args)
}

/// Writes `profile` with `sets` applied to `dir/profile.toml`; returns the
/// path as the testbeds take it.
pub fn write(profile: &str, sets: &[cp_model::Override], dir: &Path) -> Result<String> {
    let base = cp_model::Profile::load(profile).with_context(|| format!("profile {profile:?}"))?;
    let changed = base
        .with_overrides(sets)
        .with_context(|| format!("cannot apply --set to profile {profile:?}"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(FILE);
    let list: Vec<String> = sets.iter().map(ToString::to_string).collect();
    let text = format!(
        "# Effective profile: {profile} with --set {}\n{}",
        list.join(" --set "),
        changed.to_toml()
    );
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_profile_is_the_changed_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sets = vec!["api.workers=2".parse().expect("parses")];
        let path = write("openstack-2017", &sets, dir.path()).expect("writes");
        let p = cp_model::Profile::load(&path).expect("loads");
        assert_eq!(p.api.workers, 2);
        assert_eq!(p.name, "openstack-2017+api.workers=2");
        let bad = vec!["api.nope=2".parse().expect("parses")];
        assert!(write("openstack-2017", &bad, dir.path()).is_err());
    }
}
