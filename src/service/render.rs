//! The unit and plist templates, embedded in the binary, and their rendering with absolute,
//! correctly escaped paths.

use super::ServiceError;
use std::path::Path;

/// `systemd/composer-keyd.socket`, as shipped.
pub const SOCKET_TEMPLATE: &str = include_str!("../../systemd/composer-keyd.socket");
/// `systemd/composer-keyd.service`, as shipped (`@BIN@` stands for the binary).
pub const SERVICE_TEMPLATE: &str = include_str!("../../systemd/composer-keyd.service");
/// `launchd/com.composer-keyd.agent.plist`, as shipped (`@BIN@`, `@SOCKET@`, `@LOG@`).
pub const PLIST_TEMPLATE: &str = include_str!("../../launchd/com.composer-keyd.agent.plist");

/// The socket unit (it names no path of ours: `%t` is the manager's runtime dir).
pub fn socket_unit() -> String {
    SOCKET_TEMPLATE.to_owned()
}

/// The service unit with `bin` in `ExecStart=`, plus `--idle-exit SECS` when asked.
pub fn service_unit(bin: &Path, idle_exit: Option<u64>) -> Result<String, ServiceError> {
    let bin = systemd_word(bin)?;
    let mut out = String::with_capacity(SERVICE_TEMPLATE.len() + 64);
    for line in SERVICE_TEMPLATE.lines() {
        if line.starts_with("ExecStart=") {
            out.push_str(&line.replace("@BIN@", &bin));
            if let Some(secs) = idle_exit {
                out.push_str(&format!(" --idle-exit {secs}"));
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok(out)
}

/// The LaunchAgent plist with absolute paths (launchd expands neither `~` nor `$HOME`).
pub fn plist(
    bin: &Path,
    socket: &Path,
    log: &Path,
    idle_exit: Option<u64>,
) -> Result<String, ServiceError> {
    let (bin, socket, log) = (xml_text(bin)?, xml_text(socket)?, xml_text(log)?);
    let mut out = String::with_capacity(PLIST_TEMPLATE.len() + 256);
    for line in PLIST_TEMPLATE.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        out.push_str(
            &line
                .replace("@BIN@", &bin)
                .replace("@SOCKET@", &socket)
                .replace("@LOG@", &log),
        );
        out.push('\n');
        if line.trim() == "<string>serve</string>" {
            if let Some(secs) = idle_exit {
                out.push_str(&format!(
                    "{indent}<string>--idle-exit</string>\n{indent}<string>{secs}</string>\n"
                ));
            }
        }
    }
    Ok(out)
}

fn utf8(path: &Path) -> Result<&str, ServiceError> {
    let s = path
        .to_str()
        .ok_or_else(|| ServiceError::UnsafePath(path.to_path_buf(), "is not valid UTF-8"))?;
    if s.chars().any(char::is_control) {
        return Err(ServiceError::UnsafePath(
            path.to_path_buf(),
            "contains a control character",
        ));
    }
    if !path.is_absolute() {
        return Err(ServiceError::UnsafePath(
            path.to_path_buf(),
            "is not absolute",
        ));
    }
    Ok(s)
}

/// One word of a unit file command line: `%` and `$` escaped, quoted when it holds
/// blanks, quotes or backslashes (systemd.service(5), "Command lines").
fn systemd_word(path: &Path) -> Result<String, ServiceError> {
    let s = utf8(path)?.replace('%', "%%").replace('$', "$$");
    if !s.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';')) {
        return Ok(s);
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    Ok(q)
}

/// Text content of a plist `<string>`.
fn xml_text(path: &Path) -> Result<String, ServiceError> {
    let mut out = String::new();
    for c in utf8(path)?.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_is_escaped_for_systemd() {
        let w = |p: &str| systemd_word(Path::new(p)).unwrap();
        assert_eq!(w("/usr/bin/composer-keyd"), "/usr/bin/composer-keyd");
        assert_eq!(w("/opt/100%/ckd"), "/opt/100%%/ckd");
        assert_eq!(w("/opt/$HOME/ckd"), "/opt/$$HOME/ckd");
        assert_eq!(
            w("/Users/a b/bin/ckd"),
            "\"/Users/a b/bin/ckd\"",
            "blanks are quoted"
        );
        assert_eq!(w(r#"/x/a"b\c"#), r#""/x/a\"b\\c""#);
        assert!(systemd_word(Path::new("relative/ckd")).is_err());
        assert!(systemd_word(Path::new("/x/a\nExecStartPre=/bin/evil")).is_err());
    }

    #[test]
    fn service_unit_names_the_binary_and_idle_exit() {
        let unit = service_unit(Path::new("/opt/ckd/composer-keyd"), Some(900)).unwrap();
        let exec: Vec<&str> = unit
            .lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect();
        assert_eq!(
            exec,
            ["ExecStart=/opt/ckd/composer-keyd serve --idle-exit 900"]
        );
        assert!(!unit.contains("@BIN@"));
        assert!(unit.contains("Type=notify"));
        let plain = service_unit(Path::new("/b"), None).unwrap();
        assert!(plain.contains("\nExecStart=/b serve\n"));
    }

    #[test]
    fn plist_paths_are_xml_escaped() {
        let p = plist(
            Path::new("/Users/a&b/bin/composer-keyd"),
            Path::new("/tmp/s<1>/agent.sock"),
            Path::new("/l/d.log"),
            Some(60),
        )
        .unwrap();
        assert!(p.contains("<string>/Users/a&amp;b/bin/composer-keyd</string>"));
        assert!(p.contains("<string>/tmp/s&lt;1&gt;/agent.sock</string>"));
        assert!(p.contains("<string>--idle-exit</string>"));
        assert!(!p.contains('@'), "every placeholder is filled: {p}");
    }
}
