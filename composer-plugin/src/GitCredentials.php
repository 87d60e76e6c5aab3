<?php

/*
 * Points the git processes Composer starts at `composer-keyd git-credential`
 * for exactly the origins this plugin serves, through GIT_CONFIG_COUNT /
 * GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n in this process's environment, which
 * every child inherits; the user's git config is not touched.
 *
 * Why this keeps secrets out of argv: Composer's Util\Git::runCommand() runs
 * git with the plain URL first (for GitHub, once per github-protocols entry)
 * and builds `https://user:pass@host/...` from IO's credentials only when that
 * attempt fails. With this helper configured, git fetches the credential
 * itself on the server's 401, the plain attempt succeeds, and the embedded URL
 * is never built. Composer's own HTTP (GitHub/GitLab APIs, dists) still takes
 * the credentials from IO, in request headers, as before.
 *
 * When the helper has nothing to give (a type git cannot carry, a refusal, a locked
 * daemon), `--strict` makes it answer `quit=1` with one line on stderr: git then fails
 * with "told us to quit", which is none of the failures (`Authentication failed`,
 * `could not read Username`, ...) after which Composer retries with the credential in
 * the URL. The daemon answers the helper under the approval the plugin's own request
 * got (see src/server/policy/approvals.rs), so a `--confirm` or `--allow-exe` credential
 * is not refused to git.
 */

namespace ComposerKeyd;

final class GitCredentials
{
    const NO_BINARY_LINE = 'composer-keyd: no composer-keyd binary here (set COMPOSER_KEYD_BIN), so git gets no credential; Composer\'s retry with it in git\'s command line is stopped';

    /**
     * Adds one `credential.<url>.helper` entry per origin and scheme.
     *
     * @param string[]    $origins   origins whose credential this plugin set in IO
     * @param string|null $project   the project root, passed on because git runs in
     *                               Composer's cache or temp dir, not the project
     * @param bool        $allowHttp also plain http (only when secure-http is off)
     * @return int how many entries were added
     */
    public static function configure(array $origins, $project, $allowHttp)
    {
        if ($origins === array()) {
            return 0;
        }
        $bin = self::binary();
        if ($bin === null) {
            // No helper to give git the credential (a container without composer-keyd): git
            // gets none, and a helper in plain sh stops it with one line, so that Composer
            // never retries with the credential in the URL.
            $value = '!f() { cat >/dev/null; test "$1" = get || return 0; echo ' . self::shQuote(self::NO_BINARY_LINE) . ' >&2; echo quit=1; }; f';
        } else {
            $value = '!' . self::shQuote($bin) . ' git-credential --strict';
            if (is_string($project)) {
                $value .= ' --project ' . self::shQuote($project);
            }
        }
        $count = getenv('GIT_CONFIG_COUNT');
        $n = is_string($count) && preg_match('{^[0-9]+$}', $count) ? (int) $count : 0;
        $existing = array();
        for ($i = 0; $i < $n; $i++) {
            $existing[getenv('GIT_CONFIG_KEY_' . $i) . "\n" . getenv('GIT_CONFIG_VALUE_' . $i)] = true;
        }
        $added = 0;
        foreach ($origins as $origin) {
            foreach ($allowHttp ? array('https', 'http') : array('https') as $scheme) {
                $key = 'credential.' . $scheme . '://' . $origin . '.helper';
                if (isset($existing[$key . "\n" . $value])) {
                    continue;
                }
                self::putEnv('GIT_CONFIG_KEY_' . $n, $key);
                self::putEnv('GIT_CONFIG_VALUE_' . $n, $value);
                $n++;
                $added++;
            }
        }
        if ($added > 0) {
            self::putEnv('GIT_CONFIG_COUNT', (string) $n);
        }

        return $added;
    }

    /**
     * The composer-keyd binary: $COMPOSER_KEYD_BIN, else the one that installed this plugin
     * (recorded by `shim install` in the plugin's composer.json), else the first on PATH.
     *
     * @return string|null
     */
    public static function binary()
    {
        $bin = getenv('COMPOSER_KEYD_BIN');
        if (is_string($bin) && $bin !== '') {
            return is_file($bin) && is_executable($bin) ? $bin : null;
        }
        $installer = self::installedBy(dirname(__DIR__) . '/composer.json');
        if ($installer !== null) {
            return $installer;
        }
        $path = getenv('PATH');
        foreach (explode(PATH_SEPARATOR, is_string($path) ? $path : '') as $dir) {
            if ($dir !== '' && is_file($dir . '/composer-keyd') && is_executable($dir . '/composer-keyd')) {
                return $dir . '/composer-keyd';
            }
        }

        return null;
    }

    /**
     * The binary named in the plugin's composer.json under extra.composer-keyd-bin, when it
     * is still an executable file.
     */
    public static function installedBy(string $manifest): ?string
    {
        $doc = is_file($manifest) ? json_decode((string) file_get_contents($manifest), true) : null;
        $bin = is_array($doc) && isset($doc['extra']['composer-keyd-bin']) ? $doc['extra']['composer-keyd-bin'] : null;

        return is_string($bin) && $bin !== '' && is_file($bin) && is_executable($bin) ? $bin : null;
    }

    /**
     * Single-quotes $s for POSIX sh, byte for byte. Not escapeshellarg(), which under a
     * UTF-8 locale drops bytes that are not UTF-8: `/srv/a\xffb` became `/srv/ab`, another
     * project whose scope would then apply.
     */
    public static function shQuote(string $s): string
    {
        return "'" . str_replace("'", "'\\''", $s) . "'";
    }

    /**
     * As Composer's Platform::putEnv: child processes are built from $_SERVER/$_ENV too.
     *
     * @param string $name
     * @param string $value
     */
    private static function putEnv($name, $value)
    {
        putenv($name . '=' . $value);
        $_SERVER[$name] = $_ENV[$name] = $value;
    }
}
