//! Finding a Python interpreter that can import yt-dlp.
//!
//! In order: the configured interpreter; the interpreter of a configured `yt-dlp` executable;
//! the interpreter of the `yt-dlp` found on `PATH`; `python3` (then `python`) on `PATH`.
//! A `yt-dlp` executable is a Python script whose first line names its interpreter: pip's
//! console script in a virtual environment (`#!/path/venv/bin/python`, or pip's `/bin/sh`
//! trampoline for long paths) or the official zipapp release (`#!/usr/bin/env python3`, with the
//! package inside the file: the file itself then goes on `sys.path`). So yt-dlp installed in a
//! venv is found by configuring either `<venv>/bin/python` or `<venv>/bin/yt-dlp`, or by having
//! `<venv>/bin` on `PATH`. The single-file native builds (PyInstaller) cannot be imported from.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// How to start the helper: the interpreter, and a path to put first on `sys.path` (a zipapp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub python: PathBuf,
    pub extra_path: Option<PathBuf>,
    /// Where this candidate came from, for the log.
    pub origin: String,
}

/// Looks `name` up on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The interpreter a `yt-dlp` script runs with, from its first lines.
pub fn interpreter_of_script(script: &Path) -> Option<Interpreter> {
    let mut head = vec![0u8; 4096];
    let n = File::open(script).ok()?.read(&mut head).ok()?;
    head.truncate(n);
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.lines();
    let first = lines.next()?.strip_prefix("#!")?.trim();
    let python = if first == "/bin/sh" || first.ends_with("/sh") {
        // pip's trampoline:  '''exec' "/long/path/bin/python" "$0" "$@"
        let line = lines.find(|l| l.starts_with("'''exec'"))?;
        let start = line.find('"')? + 1;
        let end = start + line[start..].find('"')?;
        PathBuf::from(&line[start..end])
    } else {
        let mut words = first.split_whitespace();
        let prog = words.next()?;
        if prog.ends_with("/env") {
            let name = words.find(|w| !w.starts_with('-'))?;
            which(name)?
        } else {
            PathBuf::from(prog)
        }
    };
    // A zipapp carries the package inside the file (after the shebang line).
    let is_zip = head.windows(4).any(|w| w == b"PK\x03\x04");
    Some(Interpreter {
        python,
        extra_path: is_zip.then(|| script.to_path_buf()),
        origin: format!("the interpreter of {}", script.display()),
    })
}

/// Candidates in the order they are tried, and what was wrong with a configured executable.
pub fn candidates(python: Option<&Path>, ytdlp: Option<&Path>) -> (Vec<Interpreter>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    if let Some(p) = python {
        out.push(Interpreter {
            python: p.to_path_buf(),
            extra_path: None,
            origin: format!("the configured interpreter {}", p.display()),
        });
        // An explicit interpreter is a decision: nothing else is tried.
        return (out, problems);
    }
    if let Some(y) = ytdlp {
        match interpreter_of_script(y) {
            Some(i) => out.push(i),
            None => problems.push(format!(
                "{} is not a Python script (a native build?) and cannot be used as a library",
                y.display()
            )),
        }
        return (out, problems);
    }
    if let Some(y) = which("yt-dlp")
        && let Some(i) = interpreter_of_script(&y)
    {
        out.push(i);
    }
    for name in ["python3", "python"] {
        if let Some(p) = which(name)
            && !out.iter().any(|i| i.python == p && i.extra_path.is_none())
        {
            out.push(Interpreter {
                python: p,
                extra_path: None,
                origin: format!("{name} on PATH"),
            });
        }
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn script(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.join(name);
        File::create(&p).unwrap().write_all(body).unwrap();
        p
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "acoustic-locate-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn venv_console_script() {
        let d = tempdir();
        let p = script(
            &d,
            "yt-dlp",
            b"#!/opt/venv/bin/python3\n# -*- coding: utf-8 -*-\nimport re\nfrom yt_dlp import main\n",
        );
        let i = interpreter_of_script(&p).unwrap();
        assert_eq!(i.python, PathBuf::from("/opt/venv/bin/python3"));
        assert_eq!(i.extra_path, None);
    }

    #[test]
    fn pip_sh_trampoline() {
        let d = tempdir();
        let p = script(
            &d,
            "yt-dlp",
            b"#!/bin/sh\n'''exec' \"/very/long path/venv/bin/python\" \"$0\" \"$@\"\n' '''\nimport sys\n",
        );
        let i = interpreter_of_script(&p).unwrap();
        assert_eq!(i.python, PathBuf::from("/very/long path/venv/bin/python"));
    }

    #[test]
    fn zipapp_goes_on_sys_path() {
        let d = tempdir();
        let mut body = b"#!/usr/bin/env sh\n".to_vec();
        body.extend_from_slice(b"PK\x03\x04rest-of-zip");
        let p = script(&d, "yt-dlp", &body);
        // `env sh` resolves through PATH; sh exists on every Unix.
        let i = interpreter_of_script(&p).unwrap();
        assert!(i.python.ends_with("sh"));
        assert_eq!(i.extra_path.as_deref(), Some(p.as_path()));
    }

    #[test]
    fn native_binaries_are_rejected() {
        let d = tempdir();
        let p = script(&d, "yt-dlp_linux", b"\x7fELF\x02\x01\x01\0\0\0");
        assert_eq!(interpreter_of_script(&p), None);
    }

    #[test]
    fn a_native_build_is_reported() {
        let d = tempdir();
        let p = script(&d, "yt-dlp_linux", b"\x7fELF\x02\x01\x01\0\0\0");
        let (c, problems) = candidates(None, Some(&p));
        assert!(c.is_empty());
        assert!(problems[0].contains("not a Python script"));
    }

    #[test]
    fn configured_interpreter_is_the_only_candidate() {
        let (c, _) = candidates(Some(Path::new("/x/python")), None);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].python, PathBuf::from("/x/python"));
    }
}
