<?php

/*
 * Composer's own encoding of each auth.json credential type as the
 * username/password pair IOInterface::setAuthentication() takes, as
 * BaseIO::loadConfiguration() does it, and the way back for credentials
 * typed at Composer's prompt.
 */

namespace ComposerKeyd;

final class Credentials
{
    /**
     * Every type toPair() encodes, in auth.json's order. tests/fixtures/encoding.json pins it
     * to the daemon's CredentialType::ALL, and each type's pair and git answer to both sides.
     */
    const TYPES = array(
        'http-basic', 'bearer', 'github-oauth', 'gitlab-oauth', 'gitlab-token',
        'bitbucket-oauth', 'forgejo-token', 'custom-headers', 'client-certificate',
    );

    /** The types BaseIO::loadConfiguration() learned in Composer 2.9; older AuthHelpers would send them as basic auth. */
    const SINCE_2_9 = array('custom-headers', 'client-certificate');

    /**
     * The types composer-keyd's git helper hands to git (src/gitcred.rs's `answer`), and
     * bearer from git 2.46 (capability authtype); the others git cannot take at all.
     * Pinned against the Rust side by tests/fixtures/encoding.json.
     */
    const GIT_CARRIES = array('http-basic', 'forgejo-token', 'github-oauth', 'gitlab-oauth', 'gitlab-token');
    const GIT_BEARER_SINCE = '2.46';

    /**
     * Whether the git helper can hand a credential of $type to this git.
     *
     * @param string      $type
     * @param string|null $gitVersion Composer\Util\Git::getVersion(), e.g. "2.47.3"; null when unknown
     * @return bool
     */
    public static function gitCarries(string $type, ?string $gitVersion): bool
    {
        if (in_array($type, self::GIT_CARRIES, true)) {
            return true;
        }

        return $type === 'bearer' && $gitVersion !== null && version_compare($gitVersion, self::GIT_BEARER_SINCE, '>=');
    }

    /**
     * The pair for IOInterface::setAuthentication(), or null when the
     * credential is malformed or of a type this plugin does not know.
     *
     * @param array<string, mixed> $credential a wire credential, with "type"
     * @return array{0: string, 1: string}|null
     */
    public static function toPair(array $credential): ?array
    {
        $type = isset($credential['type']) ? $credential['type'] : null;
        switch ($type) {
            case 'http-basic':
                return self::pair($credential, 'username', 'password');
            case 'bearer':
                return self::marker($credential, 'bearer');
            case 'github-oauth':
                return self::marker($credential, 'x-oauth-basic');
            case 'gitlab-oauth':
                return self::marker($credential, 'oauth2');
            case 'gitlab-token':
                if (array_key_exists('username', $credential) && $credential['username'] !== null) {
                    return self::pair($credential, 'username', 'token');
                }

                return self::marker($credential, 'private-token');
            case 'bitbucket-oauth':
                return self::pair($credential, 'consumer-key', 'consumer-secret');
            case 'forgejo-token':
                return self::pair($credential, 'username', 'token');
            case 'custom-headers':
                return self::headers($credential);
            case 'client-certificate':
                return self::certificate($credential);
        }

        return null;
    }

    /**
     * Why this Composer cannot use the type, or null when it can.
     *
     * @param string $type
     * @param string $composerVersion Composer::getVersion(), e.g. "2.5.5" or a commit for a source checkout
     * @return string|null
     */
    public static function unsupported(string $type, string $composerVersion): ?string
    {
        if (!in_array($type, self::SINCE_2_9, true)
            || !preg_match('{^(\d+)\.(\d+)}', $composerVersion, $m)
            || (int) $m[1] > 2 || ((int) $m[1] === 2 && (int) $m[2] >= 9)) {
            return null;
        }

        return sprintf('the %s type needs Composer 2.9 or later (this is %s)', $type, $composerVersion);
    }

    /**
     * The config key listing the hosts Composer treats as this type's forge,
     * which BaseIO extends with every origin it has such a credential for.
     *
     * @param string $type
     * @return string|null
     */
    public static function domainsKey(string $type): ?string
    {
        switch ($type) {
            case 'github-oauth':
                return 'github-domains';
            case 'gitlab-oauth':
            case 'gitlab-token':
                return 'gitlab-domains';
            case 'forgejo-token':
                return 'forgejo-domains';
        }

        return null;
    }

    /**
     * Why Composer itself would refuse this credential, or null when it is fine.
     * GitHub tokens with other characters make BaseIO throw; we skip them instead.
     *
     * @param string $type
     * @param array{0: string, 1: string} $pair
     * @return string|null
     */
    public static function problem(string $type, array $pair): ?string
    {
        if ($type === 'github-oauth' && !preg_match('{^[.A-Za-z0-9_-]+$}', $pair[0])) {
            return 'the GitHub token has characters GitHub tokens never have';
        }

        return null;
    }

    /**
     * The wire credential for a pair Composer holds, e.g. one typed at its prompt.
     *
     * @param string $username
     * @param string $password
     * Only http-basic carries its secrets; for the other types the caller only needs the type.
     *
     * @return array<string, string>
     */
    public static function fromPair(string $username, string $password): array
    {
        switch ($password) {
            case 'bearer':
                return array('type' => 'bearer', 'token' => $username);
            case 'x-oauth-basic':
                return array('type' => 'github-oauth', 'token' => $username);
            case 'oauth2':
                return array('type' => 'gitlab-oauth', 'token' => $username);
            case 'private-token':
                return array('type' => 'gitlab-token', 'token' => $username);
            case 'custom-headers':
                // Never http-basic: the "username" is the JSON list of header lines.
                return array('type' => 'custom-headers');
        }
        if ($username === 'client-certificate') {
            return array('type' => 'client-certificate');
        }

        return array('type' => 'http-basic', 'username' => $username, 'password' => $password);
    }

    /**
     * As BaseIO: the JSON list of header lines, and the marker in the password slot.
     *
     * @param array<string, mixed> $c
     * @return array{0: string, 1: string}|null
     */
    private static function headers(array $c): ?array
    {
        if (!isset($c['headers']) || !is_array($c['headers']) || $c['headers'] === array()) {
            return null;
        }
        foreach ($c['headers'] as $header) {
            // A line break would let one "header" add others to the request.
            if (!is_string($header) || !preg_match('{^[!#$%&\'*+.^_`|~0-9A-Za-z-]+:[^\r\n\0]+$}', $header)) {
                return null;
            }
        }

        return array((string) json_encode(array_values($c['headers'])), 'custom-headers');
    }

    /**
     * As BaseIO: the marker in the username slot and the ssl context options, in its key order, as JSON.
     *
     * @param array<string, mixed> $c
     * @return array{0: string, 1: string}|null
     */
    private static function certificate(array $c): ?array
    {
        if (!self::filled($c, 'local-cert')) {
            return null;
        }
        $options = array('local_cert' => $c['local-cert']);
        foreach (array('local-pk' => 'local_pk', 'passphrase' => 'passphrase') as $wire => $ssl) {
            if (array_key_exists($wire, $c) && $c[$wire] !== null) {
                if (!self::filled($c, $wire)) {
                    return null;
                }
                $options[$ssl] = $c[$wire];
            }
        }

        return array('client-certificate', (string) json_encode($options));
    }

    /**
     * @param array<string, mixed> $c
     * @param string $user
     * @param string $pass
     * @return array{0: string, 1: string}|null
     */
    private static function pair(array $c, string $user, string $pass): ?array
    {
        if (!self::filled($c, $user) || !self::filled($c, $pass)) {
            return null;
        }

        return array($c[$user], $c[$pass]);
    }

    /**
     * A token with the marker Composer puts in the password slot.
     *
     * @param array<string, mixed> $c
     * @param string $marker
     * @return array{0: string, 1: string}|null
     */
    private static function marker(array $c, string $marker): ?array
    {
        return self::filled($c, 'token') ? array($c['token'], $marker) : null;
    }

    /**
     * @param array<string, mixed> $c
     * @param string $key
     * @return bool
     */
    private static function filled(array $c, string $key): bool
    {
        return isset($c[$key]) && is_string($c[$key]) && $c[$key] !== '';
    }
}
