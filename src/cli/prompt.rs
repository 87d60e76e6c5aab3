//! Reading secrets: a no-echo prompt on a terminal, else one line per field from stdin.

use anyhow::{bail, Context};
use composer_keyd::secret::Secret;
use std::io::{BufRead, IsTerminal};
use zeroize::Zeroizing;

/// Reads `names.len()` secret fields, in order.
pub fn read_fields(names: &[&str], purpose: &str) -> anyhow::Result<Vec<Secret<String>>> {
    if std::io::stdin().is_terminal() {
        names
            .iter()
            .map(|name| {
                let label = format!("{purpose} {}: ", name.replace('-', " "));
                let value = Zeroizing::new(
                    rpassword::prompt_password(label).context("reading from the terminal")?,
                );
                Ok(Secret::from(value))
            })
            .collect()
    } else {
        read_stdin_lines(names)
    }
}

/// One field per line; a trailing CR (from Windows editors) is dropped.
fn read_stdin_lines(names: &[&str]) -> anyhow::Result<Vec<Secret<String>>> {
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut line = Zeroizing::new(String::new());
        let n = lock.read_line(&mut line).context("reading stdin")?;
        if n == 0 {
            bail!(
                "stdin ended before the {name}: give {} line(s) on stdin ({})",
                names.len(),
                names.join(", ")
            );
        }
        while line.ends_with(['\n', '\r']) {
            line.pop();
        }
        out.push(Secret::from(line));
    }
    Ok(out)
}

/// The most lines `read_until_empty` takes: far more headers than any repository wants, and a
/// bound on what a runaway pipe can make us hold.
const MAX_LINES: usize = 64;

/// Reads one secret per prompt (or stdin line) until an empty one or the end of stdin.
pub fn read_until_empty(name: &str, purpose: &str) -> anyhow::Result<Vec<Secret<String>>> {
    let tty = std::io::stdin().is_terminal();
    if tty {
        eprintln!("composer-keyd: one {name} per prompt; an empty one ends the list.");
    }
    let stdin = std::io::stdin();
    let mut out = Vec::new();
    loop {
        let line = if tty {
            let label = format!("{purpose} {name} {}: ", out.len() + 1);
            Zeroizing::new(rpassword::prompt_password(label).context("reading from the terminal")?)
        } else {
            let mut line = Zeroizing::new(String::new());
            if stdin.lock().read_line(&mut line).context("reading stdin")? == 0 {
                break;
            }
            while line.ends_with(['\n', '\r']) {
                line.pop();
            }
            line
        };
        if line.is_empty() {
            break;
        }
        if out.len() == MAX_LINES {
            bail!("more than {MAX_LINES} lines; nothing was stored");
        }
        out.push(Secret::from(line));
    }
    Ok(out)
}

/// Reads one secret that may be left empty (prompt) or absent (stdin ended): `None` then.
pub fn read_optional(name: &str, purpose: &str) -> anyhow::Result<Option<Secret<String>>> {
    let line = if std::io::stdin().is_terminal() {
        let label = format!("{purpose} {name} (empty for none): ");
        Zeroizing::new(rpassword::prompt_password(label).context("reading from the terminal")?)
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading stdin")?;
        while line.ends_with(['\n', '\r']) {
            line.pop();
        }
        line
    };
    Ok((!line.is_empty()).then(|| Secret::from(line)))
}

/// Reads a passphrase, twice when it is being set, refusing a mismatch.
pub fn read_passphrase(confirm: bool) -> anyhow::Result<Secret<String>> {
    let names: &[&str] = if confirm {
        &["passphrase", "passphrase-again"]
    } else {
        &["passphrase"]
    };
    let mut v = read_fields(names, "vault")?;
    if confirm && v[0] != v[1] {
        bail!("the two passphrases differ; nothing was changed");
    }
    Ok(v.swap_remove(0))
}
