<?php

/*
 * A failed exchange with the composer-keyd daemon, typed by kind: the wire's
 * error kinds the plugin acts on, and the client's own (absent, untrusted, ...).
 * Its message never holds a secret.
 */

namespace ComposerKeyd;

final class DaemonException extends \RuntimeException
{
    /** Nothing listens on the socket (no file, connection refused): the daemon is absent. */
    const ABSENT = 'absent';
    /** The daemon accepted but did not answer in time. */
    const TIMEOUT = 'timeout';
    /** The reply is not HTTP, not JSON, or not the expected shape. */
    const BAD_REPLY = 'bad-reply';
    /** The socket fails the trust rule: another user could have put it there; nothing was sent. */
    const UNTRUSTED = 'untrusted-socket';

    /** Wire kinds (protocol.rs ErrorKind) the plugin acts on; others are kept as sent. */
    const NOT_FOUND = 'not-found';
    const DISABLED = 'disabled';
    const LOCKED = 'locked';

    /** @var string a wire kind or one of the constants above */
    private $kind;
    /** @var int the HTTP status, 0 when there was none */
    private $status;

    public function __construct(string $kind, string $message, int $status = 0)
    {
        parent::__construct($message);
        $this->kind = $kind;
        $this->status = $status;
    }

    public function getKind(): string
    {
        return $this->kind;
    }

    public function getStatus(): int
    {
        return $this->status;
    }

    /** Whether the daemon cannot be talked to at all (as opposed to a refusal it sent). */
    public function isUnreachable(): bool
    {
        return in_array($this->kind, array(self::ABSENT, self::TIMEOUT, self::BAD_REPLY, self::UNTRUSTED), true);
    }
}
