<?php

/*
 * The socket trust rule (SOCKET_RULE.md): before one byte is sent, check with
 * lstat that only the caller or root could have put the socket where it is.
 * PHP has no SO_PEERCRED, so this ownership walk is the plugin's whole check;
 * another user's fake daemon in a shared /tmp must never see a request.
 */

namespace ComposerKeyd;

final class SocketTrust
{
    const S_IFMT = 0170000;
    const S_IFDIR = 0040000;
    const S_IFLNK = 0120000;
    const S_IFSOCK = 0140000;
    const S_ISVTX = 01000;
    /** As the kernel's own limit: more links than this on one path is a loop. */
    const MAX_LINKS = 40;
    const FIX = 'remove it, or set XDG_RUNTIME_DIR or COMPOSER_KEYD_SOCK to a private directory';

    /**
     * This process's effective uid: posix_geteuid() where ext-posix is loaded,
     * else the second field of /proc/self/status's Uid line; null when neither answers.
     */
    public static function euid(): ?int
    {
        if (function_exists('posix_geteuid')) {
            return posix_geteuid();
        }
        $status = @file_get_contents('/proc/self/status');

        return is_string($status) ? self::euidFromStatus($status) : null;
    }

    /** The effective uid in a /proc/PID/status text (Uid: real effective saved fs). */
    public static function euidFromStatus(string $status): ?int
    {
        if (!preg_match('{^Uid:\s+\d+\s+(\d+)}m', $status, $m)) {
            return null;
        }

        return (int) $m[1];
    }

    /**
     * check() for the caller whose euid is $euid; an unknown euid (null) is refused,
     * since no owner can then be compared.
     *
     * @throws DaemonException
     */
    public static function target(string $socket, bool $explicit, ?int $euid): string
    {
        if ($euid === null) {
            throw self::refuse($socket, 'this process\'s user id is unknown (no posix extension, no /proc/self/status), so the socket\'s owner cannot be checked; enable PHP\'s posix extension');
        }

        return self::check($socket, $explicit, $euid);
    }

    /**
     * Checks $socket for a caller with effective uid $euid and returns the
     * symlink-free path to connect to.
     *
     * @param bool $explicit whether the path came from COMPOSER_KEYD_SOCK: its directory may be
     *                       root's (a container's /run); a default directory must be the caller's, 0700
     * @throws DaemonException UNTRUSTED when the rule refuses, ABSENT when a component is missing
     */
    public static function check(string $socket, bool $explicit, int $euid): string
    {
        clearstatcache(true);
        $path = $socket;
        if ($path === '' || $path[0] !== '/') {
            $cwd = @getcwd();
            if (!is_string($cwd)) {
                throw self::refuse($socket, 'the path is relative and the current directory is unknown; set COMPOSER_KEYD_SOCK to an absolute path');
            }
            $path = rtrim($cwd, '/') . '/' . $path;
        }
        $slash = strrpos($path, '/');
        $name = (string) substr($path, $slash + 1);
        $parentPath = $slash === 0 ? '/' : (string) substr($path, 0, (int) $slash);
        if ($name === '' || $name === '.' || $name === '..') {
            throw self::refuse($socket, 'it does not name a socket file');
        }
        $parent = self::walk($socket, $parentPath, $euid);
        $dir = @lstat($parent);
        if (!is_array($dir)) {
            throw self::absent($socket);
        }
        if ($explicit) {
            if ($dir['uid'] !== $euid && $dir['uid'] !== 0) {
                throw self::refuse($socket, self::notYours($parent, $dir['uid'], $euid) . '; ' . self::FIX);
            }
            if (($dir['mode'] & 022) !== 0 || ($dir['mode'] & self::S_ISVTX) !== 0) {
                throw self::refuse($socket, sprintf('%s is a shared directory (mode %04o, owner %s); set COMPOSER_KEYD_SOCK to a socket in a directory only you or root can write', $parent, $dir['mode'] & 07777, self::who($dir['uid'])));
            }
        } else {
            $link = @lstat($parentPath);
            if (is_array($link) && ($link['mode'] & self::S_IFMT) === self::S_IFLNK) {
                throw self::refuse($socket, sprintf('%s is a symlink (owner %s), not the private directory it must be; %s', $parentPath, self::who($link['uid']), self::FIX));
            }
            if ($dir['uid'] !== $euid) {
                throw self::refuse($socket, sprintf('%s is owned by %s, not by you (uid %d); %s', $parent, self::who($dir['uid']), $euid, self::FIX));
            }
            if (($dir['mode'] & 07777) !== 0700) {
                throw self::refuse($socket, sprintf('%s has mode %04o, not 0700 (owner %s); run `chmod 700 %s`', $parent, $dir['mode'] & 07777, self::who($dir['uid']), $parent));
            }
        }
        $target = ($parent === '/' ? '' : $parent) . '/' . $name;
        $file = @lstat($target);
        if (!is_array($file)) {
            throw self::absent($socket);
        }
        $type = $file['mode'] & self::S_IFMT;
        if ($type !== self::S_IFSOCK) {
            $what = $type === self::S_IFLNK ? 'a symlink' : 'not a socket';
            throw self::refuse($socket, sprintf('%s is %s (owner %s); %s', $target, $what, self::who($file['uid']), self::FIX));
        }
        // Under a root-owned directory that passed, only root could have put the file
        // there: a container's bind mount shows the host user's uid.
        if ($file['uid'] !== $euid && $file['uid'] !== 0 && $dir['uid'] !== 0) {
            throw self::refuse($socket, self::notYours($target, $file['uid'], $euid) . '; ' . self::FIX);
        }

        return $target;
    }

    /**
     * Walks $dirPath from / with lstat, following only links that root or the caller
     * own, and returns its symlink-free form. Every directory on the way is the
     * caller's or root's and not writable by group or others, except a root-owned
     * sticky directory (/tmp), accepted here as an intermediate step only.
     */
    private static function walk(string $socket, string $dirPath, int $euid): string
    {
        $todo = explode('/', $dirPath);
        $cur = '/';
        self::checkDir($socket, '/', $euid);
        $links = 0;
        while ($todo !== array()) {
            $part = array_shift($todo);
            if ($part === '' || $part === '.') {
                continue;
            }
            if ($part === '..') {
                // $cur is symlink-free and every step to it passed, so its parent did too.
                $cur = dirname($cur);
                continue;
            }
            $next = ($cur === '/' ? '' : $cur) . '/' . $part;
            $st = @lstat($next);
            if (!is_array($st)) {
                throw self::absent($socket);
            }
            if (($st['mode'] & self::S_IFMT) === self::S_IFLNK) {
                if ($st['uid'] !== $euid && $st['uid'] !== 0) {
                    throw self::refuse($socket, sprintf('%s is a symlink owned by %s, not by you (uid %d) or root; %s', $next, self::who($st['uid']), $euid, self::FIX));
                }
                $dest = @readlink($next);
                if (!is_string($dest) || $dest === '' || ++$links > self::MAX_LINKS) {
                    throw self::refuse($socket, sprintf('%s is a symlink that cannot be followed; %s', $next, self::FIX));
                }
                if ($dest[0] === '/') {
                    $cur = '/';
                }
                $todo = array_merge(explode('/', $dest), $todo);
                continue;
            }
            self::checkDir($socket, $next, $euid, $st);
            $cur = $next;
        }

        return $cur;
    }

    /**
     * @param array<string|int, int>|null $st the lstat of $dir when already taken
     */
    private static function checkDir(string $socket, string $dir, int $euid, ?array $st = null): void
    {
        if ($st === null) {
            $st = @lstat($dir);
            if (!is_array($st)) {
                throw self::absent($socket);
            }
        }
        if (($st['mode'] & self::S_IFMT) !== self::S_IFDIR) {
            throw self::refuse($socket, sprintf('%s is not a directory (owner %s)', $dir, self::who($st['uid'])));
        }
        if ($st['uid'] !== $euid && $st['uid'] !== 0) {
            throw self::refuse($socket, self::notYours($dir, $st['uid'], $euid) . '; ' . self::FIX);
        }
        $sharedTmp = $st['uid'] === 0 && ($st['mode'] & self::S_ISVTX) !== 0;
        if (($st['mode'] & 022) !== 0 && !$sharedTmp) {
            throw self::refuse($socket, sprintf('%s is writable by others (mode %04o, owner %s); %s', $dir, $st['mode'] & 07777, self::who($st['uid']), self::FIX));
        }
    }

    private static function notYours(string $path, int $uid, int $euid): string
    {
        return sprintf('%s is owned by %s, not by you (uid %d) or root', $path, self::who($uid), $euid);
    }

    /** "uid 65534 (nobody)", or "uid N" where the name is unknown. */
    public static function who(int $uid): string
    {
        $name = null;
        if (function_exists('posix_getpwuid')) {
            $pw = @posix_getpwuid($uid);
            if (is_array($pw) && isset($pw['name']) && is_string($pw['name'])) {
                $name = $pw['name'];
            }
        }

        return $name === null ? 'uid ' . $uid : sprintf('uid %d (%s)', $uid, $name);
    }

    private static function refuse(string $socket, string $why): DaemonException
    {
        return new DaemonException(DaemonException::UNTRUSTED, 'refusing to use ' . $socket . ': ' . $why);
    }

    private static function absent(string $socket): DaemonException
    {
        return new DaemonException(DaemonException::ABSENT, 'no composer-keyd daemon on ' . $socket . ' (no such socket)');
    }
}
