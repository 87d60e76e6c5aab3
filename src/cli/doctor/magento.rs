//! `doctor` in a Magento root: Magento's own Composer runs (`bin/magento sampledata:deploy`)
//! use the root's `var/composer_home`, where the global plugin is not loaded.

use super::Report;
use composer_keyd::composer_home::{self, MAGENTO_HOME, PLUGIN_PACKAGE};
use std::path::Path;

/// Reports on the Magento root around the current directory, if there is one.
pub(super) fn report(r: &mut Report) {
    let Ok(cwd) = std::env::current_dir() else {
        return;
    };
    let Some(project) = composer_home::find_project(&cwd) else {
        return;
    };
    if composer_home::is_magento_root(&project.root) {
        root(r, &project.root);
    }
}

fn root(r: &Report, root: &Path) {
    let home = root.join(MAGENTO_HOME);
    let shown = home.display();
    // Composer reads `$_SERVER` before getenv(), so an exported COMPOSER_HOME wins over the
    // putenv() Magento makes, and the global home (with its plugin) is used.
    if let Some(h) = std::env::var_os("COMPOSER_HOME").filter(|h| !h.is_empty()) {
        r.note(
            "magento",
            format!(
                "bin/magento's own Composer runs would use {shown}, but COMPOSER_HOME={} is exported and wins, so they load the plugin from there",
                Path::new(&h).display()
            ),
        );
        return;
    }
    let st = composer_home::plugin_state(&home);
    if st.required && st.installed && st.allowed {
        r.ok(
            "magento",
            format!("bin/magento's own Composer runs use {shown}, where {PLUGIN_PACKAGE} is installed and allowed"),
        );
        return;
    }
    r.note(
        "magento",
        format!(
            "bin/magento sampledata:deploy (and Magento's other in-process Composer runs) use COMPOSER_HOME={shown}, where the global plugin is not loaded, so they get no credentials"
        ),
    );
    r.note(
        "magento",
        format!(
            "fix: `composer-keyd exec -- bin/magento sampledata:deploy`, or once: `composer-keyd shim install --composer-home {shown}` (again after clearing var/); no auth.json is needed"
        ),
    );
}
