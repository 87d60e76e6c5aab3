<?php

/*
 * The origins a project can need before its first download event: its
 * repositories, the dist and source URLs of its composer.lock, and a forge
 * domain its VCS repositories point at over ssh. Only these are loaded at
 * activation (least privilege); any other origin waits for pre-file-download,
 * or, for the packages a run installs or updates, for the installer's
 * pre-operations-exec event (git clones fire no download event).
 */

namespace ComposerKeyd;

final class ProjectOrigins
{
    /**
     * @param array<mixed>         $repositories repository configs, as Composer's Config and the root package hold them
     * @param array<mixed>|null    $lock         the decoded composer.lock, or null without one
     * @param callable             $originOf     string URL => origin, Composer's Url::getOrigin for this config
     * @param array<int, string>   $forgeDomains github-domains, gitlab-domains and forgejo-domains together
     * @return array<string, string> lower-cased origin => the origin as Composer spells it
     */
    public static function collect(array $repositories, ?array $lock, callable $originOf, array $forgeDomains): array
    {
        $urls = array();
        foreach ($repositories as $repo) {
            if (!is_array($repo)) {
                continue;
            }
            $type = isset($repo['type']) && is_string($repo['type']) ? $repo['type'] : '';
            if (isset($repo['url']) && is_string($repo['url'])) {
                $url = $repo['url'];
                // As ComposerRepository does: a composer URL without a scheme is http.
                if ($type === 'composer' && !preg_match('{^[\w.]+\??://}', $url)) {
                    $url = 'http://' . $url;
                }
                $urls[] = $url;
            }
            if ($type === 'package' && isset($repo['package']) && is_array($repo['package'])) {
                $packages = isset($repo['package']['name']) ? array($repo['package']) : $repo['package'];
                $urls = array_merge($urls, self::packageUrls($packages));
            }
        }
        if ($lock !== null) {
            foreach (array('packages', 'packages-dev') as $key) {
                if (isset($lock[$key]) && is_array($lock[$key])) {
                    $urls = array_merge($urls, self::packageUrls($lock[$key]));
                }
            }
        }

        return self::originsOf($urls, $originOf, $forgeDomains);
    }

    /**
     * An http(s) URL's origin as Composer keys it; for an ssh or git URL, its host
     * only when it is a forge domain, whose API Composer then calls with a token.
     *
     * @param array<int, string> $forgeDomains
     */
    public static function originOf(string $url, callable $originOf, array $forgeDomains): ?string
    {
        if (preg_match('{^https?://}i', $url)) {
            $origin = (string) call_user_func($originOf, $url);

            return $origin === '' ? null : $origin;
        }
        if (preg_match('{^(?:ssh|git|git\+ssh)://(?:[^@/]+@)?([^/:]+)}i', $url, $m)
            || preg_match('{^[^@/:]+@([^/:]+):}', $url, $m)) {
            $host = strtolower($m[1]);
            foreach ($forgeDomains as $domain) {
                if (is_string($domain) && strtolower($domain) === $host) {
                    return $domain;
                }
            }
        }

        return null;
    }

    /**
     * The dist and source URLs of the packages that a transaction's operations install or
     * update: what the run is about to download or clone, and nothing it only removes.
     * Duck-typed on Composer's Operation and Package classes, which the same names carry
     * from Composer 2.0 to 2.10.
     *
     * @param array<mixed> $operations Transaction::getOperations()
     * @return array<int, string>
     */
    public static function operationUrls(array $operations): array
    {
        $urls = array();
        foreach ($operations as $operation) {
            if (!is_object($operation) || !method_exists($operation, 'getOperationType')) {
                continue;
            }
            $type = $operation->getOperationType();
            if ($type === 'install' && method_exists($operation, 'getPackage')) {
                $package = $operation->getPackage();
            } elseif ($type === 'update' && method_exists($operation, 'getTargetPackage')) {
                $package = $operation->getTargetPackage();
            } else {
                continue;
            }
            foreach (array('getDistUrls', 'getSourceUrls') as $getter) {
                if (is_object($package) && method_exists($package, $getter)) {
                    foreach ((array) $package->$getter() as $url) {
                        if (is_string($url) && $url !== '') {
                            $urls[] = $url;
                        }
                    }
                }
            }
        }

        return array_values(array_unique($urls));
    }

    /**
     * The origins of $urls, as collect() keys them.
     *
     * @param array<int, string> $urls
     * @param array<int, string> $forgeDomains
     * @return array<string, string> lower-cased origin => the origin as Composer spells it
     */
    public static function originsOf(array $urls, callable $originOf, array $forgeDomains): array
    {
        $origins = array();
        foreach ($urls as $url) {
            $origin = self::originOf($url, $originOf, $forgeDomains);
            if ($origin !== null) {
                $origins[strtolower($origin)] = $origin;
            }
        }

        return $origins;
    }

    /**
     * The dist and source URLs of package entries (a lock's or an inline package repository's).
     *
     * @param array<mixed> $packages
     * @return array<int, string>
     */
    private static function packageUrls(array $packages): array
    {
        $urls = array();
        foreach ($packages as $package) {
            foreach (array('dist', 'source') as $key) {
                if (is_array($package) && isset($package[$key]['url']) && is_string($package[$key]['url'])) {
                    $urls[] = $package[$key]['url'];
                }
            }
        }

        return $urls;
    }

    /**
     * composer.lock beside $composerFile, decoded, as Composer names it; null when absent or unreadable.
     *
     * @return array<mixed>|null
     */
    public static function readLock(string $composerFile): ?array
    {
        $lockFile = pathinfo($composerFile, PATHINFO_EXTENSION) === 'json'
            ? substr($composerFile, 0, -4) . 'lock'
            : $composerFile . '.lock';
        if (!is_file($lockFile)) {
            return null;
        }
        $lock = json_decode((string) @file_get_contents($lockFile), true);

        return is_array($lock) ? $lock : null;
    }
}
