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
