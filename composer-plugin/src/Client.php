<?php

/*
 * The plugin's HTTP/1.1 client for the composer-keyd socket: one short-lived
 * connection per request, a hard deadline on every exchange, and no PHP
 * warning ever escaping (Composer turns warnings into exceptions).
 */

namespace ComposerKeyd;

final class Client
{
    /** @var int days before an expiry that a warning is shown (the daemon's config, else 7) */
    private $expiryWarningDays = 7;

    /** Days before an expiry that a warning is shown, as the last origin list said. */
    public function expiryWarningDays(): int
    {
        return $this->expiryWarningDays;
    }

    /** @var bool whether the last origin list said the daemon reads team sources */
    private $teams = false;
    /** @var array<string, true> origin and project already read through in this client's life (one Composer run) */
    private $readThrough = array();

    /** Whether the last origin list said the daemon reads team sources (OpenBao/Vault). */
    public function hasTeams(): bool
    {
        return $this->teams;
    }

    /** Replies larger than this are refused; the daemon's largest reply is a few KiB. */
    const MAX_REPLY = 1048576;

    /** PUT outcomes (protocol.rs PutOutcome) the plugin tells apart. */
    const OUTCOME_CONFLICT = 'conflict';
    const OUTCOME_UNKNOWN = 'unknown';

    /** @var string */
    private $socket;
    /** @var bool whether the path came from COMPOSER_KEYD_SOCK rather than a default directory */
    private $explicit;
    /** @var float seconds allowed for one whole exchange: connect, write, read */
    private $timeout;
    /** @var string */
    private $userAgent;

    /**
     * @param string $socket   path of the daemon's Unix socket
     * @param float  $timeout  seconds for one request, connect included
     * @param string $version  the plugin's version, sent in User-Agent
     * @param bool   $explicit false for a default path, whose directory must be the caller's, mode 0700
     */
    public function __construct(string $socket, float $timeout = 1.5, string $version = 'dev', bool $explicit = true)
    {
        $this->socket = $socket;
        $this->timeout = $timeout;
        $this->userAgent = 'composer-keyd-plugin/' . $version;
        $this->explicit = $explicit;
    }

    /** A client for the socket this environment names, checked by the rule that fits its origin. */
    public static function fromEnvironment(float $timeout, string $version): self
    {
        $explicit = getenv('COMPOSER_KEYD_SOCK');

        return new self(self::defaultSocket(), $timeout, $version, is_string($explicit) && $explicit !== '');
    }

    /**
     * The socket path the daemon listens on by default:
     * $COMPOSER_KEYD_SOCK, else $XDG_RUNTIME_DIR/composer-keyd/agent.sock when
     * $XDG_RUNTIME_DIR is a directory of this user's, else
     * ${TMPDIR:-/tmp}/composer-keyd-$EUID/agent.sock.
     *
     * The runtime dir must exist and be ours by the same rule `composer-keyd ssh` uses to
     * place the forwarded socket on a remote machine (where a login without PAM, `su` or
     * `sudo` can leave another user's or no runtime dir in the environment), so both pick
     * the same path.
     */
    public static function defaultSocket(): string
    {
        $explicit = getenv('COMPOSER_KEYD_SOCK');
        if (is_string($explicit) && $explicit !== '') {
            return $explicit;
        }
        // An unknown euid names no one's directory; the trust check then refuses it with the reason.
        $uid = SocketTrust::euid();
        $runtime = getenv('XDG_RUNTIME_DIR');
        if (is_string($runtime) && $runtime !== '' && $uid !== null && self::isOwnDir($runtime, $uid)) {
            return rtrim($runtime, '/') . '/composer-keyd/agent.sock';
        }
        $tmp = getenv('TMPDIR');
        if (!is_string($tmp) || $tmp === '') {
            $tmp = '/tmp';
        }

        return rtrim($tmp, '/') . '/composer-keyd-' . ($uid === null ? 'unknown' : $uid) . '/agent.sock';
    }

    /** Whether $dir is a directory owned by $uid (as sh's `[ -d ] && [ -O ]`, through links). */
    private static function isOwnDir(string $dir, int $uid): bool
    {
        clearstatcache(true, $dir);

        return @is_dir($dir) && @fileowner($dir) === $uid;
    }

    public function getSocket(): string
    {
        return $this->socket;
    }

    /**
     * `GET /v1/origins?project=DIR`: the origins that apply to a project, without secrets.
     *
     * @return array<int, array{origin: string, type: string, project: string|null, enabled: bool}>
     */
    public function origins(?string $project): array
    {
        $reply = $this->request('GET', '/v1/origins' . self::projectQuery($project));
        if (!isset($reply['origins']) || !is_array($reply['origins'])) {
            throw new DaemonException(DaemonException::BAD_REPLY, 'the daemon\'s origin list has no "origins" array');
        }
        if (isset($reply['expiry_warning_days']) && is_int($reply['expiry_warning_days']) && $reply['expiry_warning_days'] >= 0) {
            $this->expiryWarningDays = $reply['expiry_warning_days'];
        }
        $this->teams = isset($reply['teams']) && $reply['teams'] === true;
        $origins = array();
        foreach ($reply['origins'] as $entry) {
            if (!is_array($entry) || !isset($entry['origin'], $entry['type']) || !is_string($entry['origin']) || !is_string($entry['type'])) {
                throw new DaemonException(DaemonException::BAD_REPLY, 'the daemon\'s origin list has a malformed entry');
            }
            $origins[] = array(
                'origin' => $entry['origin'],
                'type' => $entry['type'],
                'project' => isset($entry['project']) && is_string($entry['project']) ? $entry['project'] : null,
                'enabled' => !isset($entry['enabled']) || $entry['enabled'] !== false,
                'expires' => isset($entry['expires']) && is_int($entry['expires']) ? $entry['expires'] : null,
            );
        }

        return $origins;
    }

    /**
     * `GET /v1/credentials/{origin}?project=DIR`: the credential that wins for the project.
     *
     * With team sources, this client's first lookup of an origin (one client serves one
     * Composer run) carries `fresh=1`: the daemon reads a team entry through to OpenBao or
     * Vault past its cache, so a rotation there reaches the next run. Composer gives a
     * plugin no retry of a refused download, so a run must start with the current pair.
     * Later lookups use the daemon's cache; without teams no lookup carries a flag, and the
     * daemon answers it on its fast path.
     *
     * @param bool $refresh read team sources again even while the engine is failing (a
     *                      repository refused what this run was given)
     * @return array<string, mixed> the credential object, with its "type"
     */
    public function credential(string $origin, ?string $project, bool $refresh = false): array
    {
        $query = self::projectQuery($project);
        $key = strtolower($origin) . "\0" . (string) $project;
        if ($refresh) {
            $query .= ($query === '' ? '?' : '&') . 'refresh=1';
        } elseif ($this->teams && !isset($this->readThrough[$key])) {
            $query .= ($query === '' ? '?' : '&') . 'fresh=1';
        }
        $this->readThrough[$key] = true;
        $reply = $this->request('GET', '/v1/credentials/' . rawurlencode($origin) . $query);
        if (!isset($reply['credential']) || !is_array($reply['credential']) || !isset($reply['credential']['type']) || !is_string($reply['credential']['type'])) {
            throw new DaemonException(DaemonException::BAD_REPLY, 'the daemon\'s credential reply has no typed "credential"');
        }

        return $reply['credential'];
    }

    /**
     * `PUT /v1/credentials/{origin}`: stores a credential (unscoped when $project is null).
     *
     * @param array<string, mixed> $credential
     * @return string the outcome: created, replaced, unchanged, conflict, ...
     */
    public function store(string $origin, array $credential, ?string $project = null): string
    {
        $body = json_encode(array('credential' => $credential, 'no_clobber' => true));
        if (!is_string($body)) {
            throw new DaemonException(DaemonException::BAD_REPLY, 'the credential cannot be encoded as JSON');
        }
        $reply = $this->request('PUT', '/v1/credentials/' . rawurlencode($origin) . self::projectQuery($project), $body);

        return isset($reply['outcome']) && is_string($reply['outcome']) ? $reply['outcome'] : self::OUTCOME_UNKNOWN;
    }

    private static function projectQuery(?string $project): string
    {
        return $project === null || $project === '' ? '' : '?project=' . rawurlencode($project);
    }

    /**
     * Sends one request and returns the decoded JSON object of a 2xx reply.
     *
     * @return array<string, mixed>
     */
    public function request(string $method, string $path, ?string $body = null): array
    {
        // Checked on every request, connecting to the checked symlink-free path, not the configured one.
        $target = SocketTrust::target($this->socket, $this->explicit, SocketTrust::euid());
        $deadline = microtime(true) + $this->timeout;
        $errno = 0;
        $errstr = '';
        $stream = @stream_socket_client('unix://' . $target, $errno, $errstr, $this->timeout, STREAM_CLIENT_CONNECT);
        if (!is_resource($stream)) {
            $why = $errstr !== '' ? $errstr : (file_exists($target) ? 'cannot connect' : 'no such socket');
            throw new DaemonException(DaemonException::ABSENT, 'no composer-keyd daemon on ' . $this->socket . ' (' . $why . ')');
        }
        try {
            $head = $method . ' ' . $path . " HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
                . 'User-Agent: ' . $this->userAgent . "\r\nConnection: close\r\n";
            if ($body !== null) {
                $head .= "Content-Type: application/json\r\nContent-Length: " . strlen($body) . "\r\n";
            }
            $this->send($stream, $head . "\r\n" . (string) $body, $deadline);
            $raw = $this->receive($stream, $deadline);
        } finally {
            @fclose($stream);
        }

        return self::parse($raw);
    }

    /**
     * @param resource $stream
     */
    private function send($stream, string $data, float $deadline): void
    {
        while ($data !== '') {
            self::armTimeout($stream, $deadline);
            $written = @fwrite($stream, $data);
            if ($written === false || $written === 0) {
                $meta = @stream_get_meta_data($stream);
                if (!empty($meta['timed_out']) || microtime(true) >= $deadline) {
                    throw $this->timedOut();
                }
                throw new DaemonException(DaemonException::ABSENT, 'the composer-keyd daemon closed the connection');
            }
            $data = (string) substr($data, $written);
        }
    }

    /**
     * Reads until the reply is complete (Content-Length reached, last chunk, or EOF).
     *
     * @param resource $stream
     */
    private function receive($stream, float $deadline): string
    {
        $raw = '';
        while (true) {
            self::armTimeout($stream, $deadline);
            $chunk = @fread($stream, 8192);
            // feof() is also true after a read timed out, so the timeout is checked first.
            $meta = @stream_get_meta_data($stream);
            if (!empty($meta['timed_out'])) {
                throw $this->timedOut();
            }
            if ($chunk === false || ($chunk === '' && @feof($stream))) {
                break;
            }
            if ($chunk === '') {
                if (microtime(true) >= $deadline) {
                    throw $this->timedOut();
                }
                continue;
            }
            $raw .= $chunk;
            if (strlen($raw) > self::MAX_REPLY) {
                throw new DaemonException(DaemonException::BAD_REPLY, 'the daemon\'s reply is larger than ' . self::MAX_REPLY . ' bytes');
            }
            if (self::isComplete($raw)) {
                break;
            }
            if (microtime(true) >= $deadline) {
                throw $this->timedOut();
            }
        }

        return $raw;
    }

    /**
     * @param resource $stream
     */
    private static function armTimeout($stream, float $deadline): void
    {
        $left = max(0.001, $deadline - microtime(true));
        $seconds = (int) floor($left);
        @stream_set_timeout($stream, $seconds, (int) (($left - $seconds) * 1000000));
    }

    private function timedOut(): DaemonException
    {
        return new DaemonException(DaemonException::TIMEOUT, sprintf('the composer-keyd daemon on %s did not answer within %.1f s', $this->socket, $this->timeout));
    }

    /**
     * Whether $raw already holds a whole response, so a daemon that keeps the
     * connection open does not cost a timeout.
     */
    private static function isComplete(string $raw): bool
    {
        $end = strpos($raw, "\r\n\r\n");
        if ($end === false) {
            return false;
        }
        $headers = self::headers(substr($raw, 0, $end));
        $body = (string) substr($raw, $end + 4);
        if (isset($headers['transfer-encoding']) && stripos($headers['transfer-encoding'], 'chunked') !== false) {
            return self::dechunk($body) !== null;
        }
        if (isset($headers['content-length']) && ctype_digit($headers['content-length'])) {
            return strlen($body) >= (int) $headers['content-length'];
        }

        return false;
    }

    /**
     * @param string $head the header block without the status line's trailing CRLF CRLF
     * @return array<string, string> lower-cased names
     */
    private static function headers(string $head): array
    {
        $headers = array();
        $lines = explode("\r\n", $head);
        array_shift($lines);
        foreach ($lines as $line) {
            $colon = strpos($line, ':');
            if ($colon !== false) {
                $headers[strtolower(trim(substr($line, 0, $colon)))] = trim(substr($line, $colon + 1));
            }
        }

        return $headers;
    }

    /**
     * Decodes a chunked body; null while it is incomplete or malformed.
     */
    private static function dechunk(string $body): ?string
    {
        $out = '';
        $pos = 0;
        while (true) {
            $eol = strpos($body, "\r\n", $pos);
            if ($eol === false) {
                return null;
            }
            $size = trim(substr($body, $pos, $eol - $pos));
            $semi = strpos($size, ';');
            if ($semi !== false) {
                $size = substr($size, 0, $semi);
            }
            if ($size === '' || !ctype_xdigit($size)) {
                return null;
            }
            $len = (int) hexdec($size);
            if ($len === 0) {
                return $out;
            }
            if (strlen($body) < $eol + 2 + $len + 2) {
                return null;
            }
            $out .= substr($body, $eol + 2, $len);
            $pos = $eol + 2 + $len + 2;
        }
    }

    /**
     * Turns a raw HTTP response into the decoded JSON object, or throws the daemon's typed error.
     * @return array<string, mixed>
     */
    public static function parse(string $raw): array
    {
        $end = strpos($raw, "\r\n\r\n");
        if ($end === false || !preg_match('{^HTTP/1\.[01] (\d{3})}', $raw, $m)) {
            throw new DaemonException(DaemonException::BAD_REPLY, 'the daemon\'s reply is not an HTTP response');
        }
        $status = (int) $m[1];
        $headers = self::headers(substr($raw, 0, $end));
        $body = (string) substr($raw, $end + 4);
        if (isset($headers['transfer-encoding']) && stripos($headers['transfer-encoding'], 'chunked') !== false) {
            $body = self::dechunk($body);
            if ($body === null) {
                throw new DaemonException(DaemonException::BAD_REPLY, 'the daemon\'s chunked reply is cut short', $status);
            }
        } elseif (isset($headers['content-length']) && ctype_digit($headers['content-length'])) {
            if (strlen($body) < (int) $headers['content-length']) {
                throw new DaemonException(DaemonException::BAD_REPLY, 'the daemon\'s reply is cut short', $status);
            }
            $body = (string) substr($body, 0, (int) $headers['content-length']);
        }
        $json = json_decode($body, true);
        if ($status >= 200 && $status < 300) {
            if (!is_array($json)) {
                throw new DaemonException(DaemonException::BAD_REPLY, 'the daemon\'s reply is not a JSON object', $status);
            }

            return $json;
        }
        if (is_array($json) && isset($json['error']['kind']) && is_string($json['error']['kind'])) {
            $message = isset($json['error']['message']) && is_string($json['error']['message'])
                ? $json['error']['message'] : $json['error']['kind'];

            throw new DaemonException($json['error']['kind'], $message, $status);
        }

        throw new DaemonException(DaemonException::BAD_REPLY, 'the daemon answered HTTP ' . $status . ' without an error body', $status);
    }
}
