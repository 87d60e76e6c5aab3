<?php

/*
 * A failed exchange with the composer-keyd daemon. Its message never holds a secret.
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

    /** @var string a wire kind (locked, disabled, not-found, ...) or one of the constants above */
    private $kind;
    /** @var int the HTTP status, 0 when there was none */
    private $status;

    /**
     * @param string $kind
     * @param string $message
     * @param int    $status
     */
    public function __construct($kind, $message, $status = 0)
    {
        parent::__construct($message);
        $this->kind = (string) $kind;
        $this->status = (int) $status;
    }

    /** @return string */
    public function getKind()
    {
        return $this->kind;
    }

    /** @return int */
    public function getStatus()
    {
        return $this->status;
    }

    /**
     * Whether the daemon cannot be talked to at all (as opposed to a refusal it sent).
     *
     * @return bool
     */
    public function isUnreachable()
    {
        return $this->kind === self::ABSENT || $this->kind === self::TIMEOUT || $this->kind === self::BAD_REPLY;
    }
}
