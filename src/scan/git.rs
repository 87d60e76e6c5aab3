//! `--git-history`: every committed version of Composer's files, each distinct blob read once.

use super::{analyze, kind_of, Finding, ScanError, MAX_FILE};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Scans every version of auth.json, composer.json and composer.lock ever committed on any
/// ref of the repository holding `dir`. Each distinct blob is read once.
pub fn scan_git_history(dir: &Path) -> Result<Vec<Finding>, ScanError> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let top = PathBuf::from(String::from_utf8_lossy(&top).trim_end_matches('\n'));
    if top.as_os_str().is_empty() {
        return Err(ScanError::NotARepo(dir.to_path_buf()));
    }
    let log = git(
        &top,
        &[
            "log",
            "--all",
            "-m",
            "--no-renames",
            "--no-abbrev",
            "--raw",
            "-z",
            "--format=%x01%H",
            "--",
            ":(glob)**/auth.json",
            ":(glob)**/composer.json",
            ":(glob)**/composer.lock",
        ],
    )?;
    // blob -> (path, newest commit holding it), in first-seen (newest-first) order.
    let mut blobs: Vec<(String, String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut commit = String::new();
    let mut tokens = log.split(|b| *b == 0).map(|t| String::from_utf8_lossy(t));
    while let Some(tok) = tokens.next() {
        let tok = tok.trim_start_matches('\n');
        if let Some(h) = tok.strip_prefix('\u{1}') {
            commit = h.chars().take(12).collect();
        } else if let Some(meta) = tok.strip_prefix(':') {
            let Some(path) = tokens.next() else { break };
            let blob = meta.split(' ').nth(3).unwrap_or_default().to_owned();
            if blob.is_empty() || blob.bytes().all(|b| b == b'0') {
                continue;
            }
            if !index.contains_key(&blob) {
                index.insert(blob.clone(), blobs.len());
                blobs.push((blob, path.into_owned(), commit.clone()));
            }
        }
    }
    let contents = cat_blobs(&top, blobs.iter().map(|b| b.0.as_str()))?;
    let mut found = Vec::new();
    for ((_, path, commit), bytes) in blobs.iter().zip(contents) {
        let name = path.rsplit('/').next().unwrap_or_default();
        let Some(kind) = kind_of(name) else { continue };
        for (origin, t, at) in analyze(kind, &bytes) {
            found.push(Finding {
                file: path.clone(),
                commit: Some(commit.clone()),
                at,
                origin,
                kind: t,
            });
        }
    }
    // One line per file, origin and type: the newest commit that holds it.
    let mut seen = BTreeSet::new();
    found.retain(|f| {
        seen.insert((
            f.file.clone(),
            f.at.clone(),
            f.origin.clone(),
            f.kind.clone(),
        ))
    });
    found.sort();
    Ok(found)
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, ScanError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ScanError::Git(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not a git repository") {
            return Err(ScanError::NotARepo(dir.to_path_buf()));
        }
        // git quotes remote URLs in its errors, userinfo included.
        let first = err.lines().next().unwrap_or("");
        return Err(ScanError::Git(
            crate::credential::redact_userinfo(first).into_owned(),
        ));
    }
    Ok(out.stdout)
}

/// Reads blobs with one `git cat-file --batch`, in the order given.
fn cat_blobs<'a>(
    top: &Path,
    shas: impl Iterator<Item = &'a str>,
) -> Result<Vec<zeroize::Zeroizing<Vec<u8>>>, ScanError> {
    let input: String = shas.map(|s| format!("{s}\n")).collect();
    let count = input.lines().count();
    let mut child = Command::new("git")
        .arg("-C")
        .arg(top)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| ScanError::Git(format!("cannot run git: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or(ScanError::Git("no stdin".into()))?;
    // A writer thread, so that git never blocks on a full output pipe while we write.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let stdout = child
        .stdout
        .take()
        .ok_or(ScanError::Git("no stdout".into()))?;
    let mut r = BufReader::new(stdout);
    let mut out = Vec::with_capacity(count);
    let io = |e: std::io::Error| ScanError::Git(e.to_string());
    for _ in 0..count {
        let mut header = String::new();
        r.read_line(&mut header).map_err(io)?;
        let size: u64 = match header.split(' ').collect::<Vec<_>>().as_slice() {
            [_, "blob", size] => size.trim().parse().unwrap_or(0),
            _ => {
                out.push(zeroize::Zeroizing::new(Vec::new()));
                continue;
            }
        };
        let mut buf = zeroize::Zeroizing::new(Vec::new());
        (&mut r)
            .take(size.min(MAX_FILE))
            .read_to_end(&mut buf)
            .map_err(io)?;
        // Skip whatever is over the bound, then the newline after the content.
        std::io::copy(
            &mut (&mut r).take(size.saturating_sub(MAX_FILE) + 1),
            &mut std::io::sink(),
        )
        .map_err(io)?;
        out.push(buf);
    }
    // The writer is done once git has answered every line; its error would show as a short read.
    let _ = writer.join();
    // git has written everything we read; its exit status adds nothing.
    let _ = child.wait();
    Ok(out)
}
