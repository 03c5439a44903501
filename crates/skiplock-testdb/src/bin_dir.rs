//! Finding the PostgreSQL server programs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::Error;

/// Where distributions put versioned server binaries: Debian and Ubuntu use
/// `/usr/lib/postgresql/<major>/bin`.
const VERSIONED_ROOT: &str = "/usr/lib/postgresql";
/// Where a source build installs by default.
const SOURCE_BUILD_BIN: &str = "/usr/local/pgsql/bin";

/// Finds the directory holding the server programs `initdb` and `pg_ctl`.
///
/// Looks, in order, at the `PG_BIN` environment variable, each directory on `PATH`, the newest
/// `/usr/lib/postgresql/<major>/bin`, and `/usr/local/pgsql/bin`. A set `PG_BIN` is final: if it
/// does not hold the programs, that is an error rather than a silent fall-back to another
/// version.
///
/// # Errors
///
/// [`Error::BinariesNotFound`], naming every place searched and how to install the server.
///
/// # Example: print where the server lives
///
/// ```no_run
/// let bin = skiplock_testdb::find_bin_dir()?;
/// println!("initdb is {}", bin.join("initdb").display());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn find_bin_dir() -> Result<PathBuf, Error> {
    find_in(
        std::env::var_os("PG_BIN"),
        std::env::var_os("PATH"),
        Path::new(VERSIONED_ROOT),
        Path::new(SOURCE_BUILD_BIN),
    )
}

/// [`find_bin_dir`] with its inputs passed in, so tests need not touch the process environment.
pub(crate) fn find_in(
    pg_bin: Option<OsString>,
    path: Option<OsString>,
    versioned_root: &Path,
    source_build: &Path,
) -> Result<PathBuf, Error> {
    let has_programs = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let not_found = |searched: Vec<String>| Error::BinariesNotFound { searched: searched.join(", ") };

    if let Some(dir) = pg_bin.filter(|v| !v.is_empty()).map(PathBuf::from) {
        if has_programs(&dir) {
            return Ok(dir);
        }
        return Err(not_found(vec![format!(
            "PG_BIN={} (no initdb and pg_ctl there; unset it to search elsewhere)",
            dir.display()
        )]));
    }
    let mut searched = vec!["PG_BIN (unset)".to_owned()];

    let path = path.unwrap_or_default();
    if let Some(dir) = std::env::split_paths(&path).find(|d| has_programs(d)) {
        return Ok(dir);
    }
    searched.push(format!("PATH ({})", path.to_string_lossy()));

    // Newest major version first: "15" vs "9.6" compares by the number before the dot.
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir(versioned_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let major = name.to_str()?.split('.').next()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    versioned.sort();
    if let Some((_, dir)) = versioned.into_iter().rev().find(|(_, d)| has_programs(d)) {
        return Ok(dir);
    }
    searched.push(format!("{}/<version>/bin", versioned_root.display()));

    if has_programs(source_build) {
        return Ok(source_build.to_owned());
    }
    searched.push(source_build.display().to_string());
    Err(not_found(searched))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bin(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for p in ["initdb", "pg_ctl"] {
            std::fs::write(dir.join(p), "").unwrap();
        }
    }

    #[test]
    fn search_order_and_error_text() {
        let tmp = std::env::temp_dir().join(format!("skiplock-testdb-bin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let (root, src, empty) = (tmp.join("lib"), tmp.join("src"), tmp.join("empty"));
        std::fs::create_dir_all(&empty).unwrap();

        let err = find_in(None, Some(empty.clone().into()), &root, &src).unwrap_err();
        let msg = err.to_string();
        for needle in [
            "apt-get install postgresql",
            "PG_BIN (unset)",
            "PATH (",
            "lib/<version>/bin",
            "SKIPLOCK_TEST_DATABASE_URL",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
        }

        fake_bin(&src);
        assert_eq!(find_in(None, None, &root, &src).unwrap(), src);
        fake_bin(&root.join("9.6/bin"));
        fake_bin(&root.join("15/bin"));
        std::fs::create_dir_all(root.join("16/bin")).unwrap(); // no programs: skipped
        assert_eq!(find_in(None, None, &root, &src).unwrap(), root.join("15/bin"));
        let on_path = tmp.join("path");
        fake_bin(&on_path);
        let path = std::env::join_paths([&empty, &on_path]).unwrap();
        assert_eq!(find_in(None, Some(path.clone()), &root, &src).unwrap(), on_path);

        // A set PG_BIN wins, and when wrong it is an error, not a fall-back.
        assert_eq!(find_in(Some(src.clone().into()), Some(path.clone()), &root, &src).unwrap(), src);
        let err = find_in(Some(empty.clone().into()), Some(path), &root, &src).unwrap_err();
        assert!(err.to_string().contains("PG_BIN="), "{err}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
