<?php

/*
 * The socket trust walk on real directories, real sockets and real symlinks.
 * Run as root, files are chown'ed to nobody (65534) to stand for another user;
 * a caller uid other than ours is passed to check() to see the rule from a user's side.
 */

use ComposerKeyd\Client;
use ComposerKeyd\DaemonException;
use ComposerKeyd\SocketTrust;

const NOBODY = 65534;

if (posix_geteuid() !== 0) {
    test('the trust walk tests run as root', function () {
        throw new \RuntimeException('run the plugin tests as root: they chown files to nobody (uid 65534) to act as another user');
    });

    return;
}

/** A fresh root-owned 0700 scratch dir under the system temp dir, removed by trust_cleanup(). */
function trust_dir(): string
{
    $dir = sys_get_temp_dir() . '/ckd-trust-' . getmypid() . '-' . mt_rand();
    mkdir($dir, 0700);
    chmod($dir, 0700);
    $GLOBALS['trust_dirs'][] = $dir;

    return $dir;
}

/** A directory with exactly $mode, owned by $uid. */
function mkdir_as(string $path, int $mode, int $uid = 0): string
{
    mkdir($path);
    chmod($path, $mode);
    chown($path, $uid);

    return $path;
}

/** A socket file with no listener, as a stale daemon leaves one, owned by $uid. */
function sock_file(string $path, int $uid = 0): string
{
    $server = stream_socket_server('unix://' . $path);
    fclose($server);
    chown($path, $uid);

    return $path;
}

function untrusted(string $sock, bool $explicit, int $euid = 0): string
{
    $e = refusal(function () use ($sock, $explicit, $euid) {
        SocketTrust::check($sock, $explicit, $euid);
    });
    same(DaemonException::UNTRUSTED, $e->getKind(), 'kind (' . $e->getMessage() . ')');
    same(0, strpos($e->getMessage(), 'refusing to use ' . $sock . ': '), 'names the socket: ' . $e->getMessage());
    same(false, strpos($e->getMessage(), "\n"), 'one line');

    return $e->getMessage();
}

function trust_cleanup(): void
{
    foreach (array_reverse($GLOBALS['trust_dirs']) as $dir) {
        exec('rm -rf ' . escapeshellarg($dir));
    }
    $GLOBALS['trust_dirs'] = array();
}

$GLOBALS['trust_dirs'] = array();

test('your own 0700 directory and socket are trusted, by either rule', function () {
    $own = mkdir_as(trust_dir() . '/composer-keyd', 0700);
    $sock = sock_file("$own/agent.sock");
    same($sock, SocketTrust::check($sock, false, 0));
    same($sock, SocketTrust::check($sock, true, 0));
    trust_cleanup();
});

test('a directory another user owns is refused with its path, owner and the fix', function () {
    $dir = mkdir_as(trust_dir() . '/composer-keyd-0', 0700, NOBODY);
    $sock = sock_file("$dir/agent.sock", NOBODY);
    $expected = "refusing to use $sock: $dir is owned by uid 65534 (nobody), not by you (uid 0) or root; "
        . 'remove it, or set XDG_RUNTIME_DIR or COMPOSER_KEYD_SOCK to a private directory';
    same($expected, untrusted($sock, false));
    same($expected, untrusted($sock, true));
    trust_cleanup();
});

test('a directory on the way that others can write is refused; a root-owned sticky one is not', function () {
    $base = trust_dir();
    $open = mkdir_as("$base/open", 0777);
    $own = mkdir_as("$open/keyd", 0700);
    $sock = sock_file("$own/agent.sock");
    contains("$open is writable by others (mode 0777, owner uid 0 (root))", untrusted($sock, true));
    chmod($open, 01777);
    same($sock, SocketTrust::check($sock, false, 0), 'sticky root dir as an intermediate step');
    chmod($open, 0775);
    contains('mode 0775', untrusted($sock, true));
    chown($open, NOBODY);
    chmod($open, 01777);
    contains("$open is owned by uid 65534 (nobody)", untrusted($sock, true));
    trust_cleanup();
});

test('a sticky directory is never the socket\'s own directory', function () {
    $tmp = mkdir_as(trust_dir() . '/tmp', 01777);
    $sock = sock_file("$tmp/agent.sock");
    contains("$tmp is a shared directory (mode 1777", untrusted($sock, true));
    contains("$tmp has mode 1777, not 0700", untrusted($sock, false));
    trust_cleanup();
});

test('a default directory must be yours with mode 0700; an explicit one may be 0755 or root\'s', function () {
    $base = trust_dir();
    $dir = mkdir_as("$base/keyd", 0750);
    $sock = sock_file("$dir/agent.sock");
    contains("$dir has mode 0750, not 0700", untrusted($sock, false));
    chmod($dir, 0755);
    same($sock, SocketTrust::check($sock, true, 0));
    // As user 1000: a root-owned 0755 directory is fine when named explicitly, never as a default.
    chmod($base, 0755);
    contains("$dir is owned by uid 0 (root), not by you (uid 1000)", untrusted($sock, false, 1000));
    same($sock, SocketTrust::check($sock, true, 1000));
    trust_cleanup();
});

test('a root-owned /run-like directory admits a socket another uid owns (container bind mount)', function () {
    $base = trust_dir();
    chmod($base, 0755);
    $run = mkdir_as("$base/run", 0755);
    $sock = sock_file("$run/composer-keyd.sock", NOBODY);
    same($sock, SocketTrust::check($sock, true, 1000));
    // The same socket in user 1000's own directory: anyone but root could have put it there.
    $mine = mkdir_as("$base/mine", 0700, 1000);
    $other = sock_file("$mine/agent.sock", NOBODY);
    contains("$other is owned by uid 65534 (nobody), not by you (uid 1000) or root", untrusted($other, true, 1000));
    contains("$other is owned by uid 65534 (nobody)", untrusted($other, false, 1000));
    trust_cleanup();
});

test('symlinks: followed when root or you own them and the target passes; refused otherwise', function () {
    $base = trust_dir();
    $real = mkdir_as("$base/real", 0700);
    $sock = sock_file("$real/agent.sock");
    $via = mkdir_as("$base/via", 0755);
    symlink($real, "$via/link");
    same($sock, SocketTrust::check("$via/link/agent.sock", true, 0), 'resolved to the real path');
    // A default socket directory must itself be a directory, not a link to one.
    contains("$via/link is a symlink", untrusted("$via/link/agent.sock", false));
    // A relative link, through a link in the middle of the path.
    symlink('../real', "$via/rel");
    symlink("$via", "$base/top");
    same($sock, SocketTrust::check("$base/top/rel/agent.sock", true, 0));
    // A link another user planted.
    symlink($real, "$via/planted");
    lchown("$via/planted", NOBODY);
    contains("$via/planted is a symlink owned by uid 65534 (nobody)", untrusted("$via/planted/agent.sock", true));
    // A link of ours into another user's directory: the target fails.
    $theirs = mkdir_as("$base/theirs", 0700, NOBODY);
    sock_file("$theirs/agent.sock", NOBODY);
    symlink($theirs, "$via/to-theirs");
    contains("$theirs is owned by uid 65534 (nobody)", untrusted("$via/to-theirs/agent.sock", true));
    // A loop ends in a refusal, not a hang.
    symlink("$via/loop", "$via/loop");
    contains('cannot be followed', untrusted("$via/loop/agent.sock", true));
    trust_cleanup();
});

test('the socket itself must be a socket, not a file or a symlink', function () {
    $dir = mkdir_as(trust_dir() . '/keyd', 0700);
    file_put_contents("$dir/file.sock", '');
    contains("$dir/file.sock is not a socket", untrusted("$dir/file.sock", false));
    $sock = sock_file("$dir/agent.sock");
    symlink($sock, "$dir/link.sock");
    contains("$dir/link.sock is a symlink", untrusted("$dir/link.sock", false));
    trust_cleanup();
});

test('relative paths and .. are walked from the current directory', function () {
    $base = trust_dir();
    $dir = mkdir_as("$base/keyd", 0700);
    $sock = sock_file("$dir/agent.sock");
    mkdir_as("$base/other", 0700);
    $cwd = getcwd();
    chdir($base);
    try {
        same($sock, SocketTrust::check('keyd/agent.sock', true, 0));
        same($sock, SocketTrust::check('other/../keyd/./agent.sock', true, 0));
    } finally {
        chdir($cwd);
    }
    trust_cleanup();
});

test('a missing directory or socket is an absent daemon, not an untrusted one', function () {
    $dir = mkdir_as(trust_dir() . '/keyd', 0700);
    same(DaemonException::ABSENT, refusal(function () use ($dir) {
        SocketTrust::check("$dir/agent.sock", false, 0);
    })->getKind());
    same(DaemonException::ABSENT, refusal(function () use ($dir) {
        SocketTrust::check("$dir/nothing/agent.sock", true, 0);
    })->getKind());
    trust_cleanup();
});

test('the effective uid is read from /proc/self/status without ext-posix', function () {
    same(33, SocketTrust::euidFromStatus("Name:\tphp\nUmask:\t0022\nUid:\t1000\t33\t1000\t33\nGid:\t0\t0\t0\t0\n"));
    same(null, SocketTrust::euidFromStatus("Name:\tphp\n"));
    same(posix_geteuid(), SocketTrust::euidFromStatus((string) file_get_contents('/proc/self/status')));
    same(posix_geteuid(), SocketTrust::euid());
});

test('an unknown effective uid is refused, with the fix', function () {
    $dir = mkdir_as(trust_dir() . '/keyd', 0700);
    $sock = sock_file("$dir/agent.sock");
    same($sock, SocketTrust::target($sock, false, 0));
    $e = refusal(function () use ($sock) {
        SocketTrust::target($sock, false, null);
    });
    same(DaemonException::UNTRUSTED, $e->getKind());
    contains("refusing to use $sock: this process's user id is unknown", $e->getMessage());
    contains("enable PHP's posix extension", $e->getMessage());
    trust_cleanup();
});

test('an untrusted socket receives no byte, and the client says why', function () {
    $d = start_daemon(array('*' => array('body' => fixture('origins.json'))));
    try {
        chown($d['dir'], NOBODY);
        $e = refusal(function () use ($d) {
            (new Client($d['sock'], 5.0, 'test', false))->origins('/p');
        });
        same(DaemonException::UNTRUSTED, $e->getKind());
        same(true, $e->isUnreachable());
        contains('is owned by uid 65534 (nobody)', $e->getMessage());
        same(false, file_exists($d['dir'] . '/log'), 'the fake daemon logged a request');
        chown($d['dir'], 0);
        same(2, count((new Client($d['sock'], 5.0, 'test', false))->origins('/p')), 'the same daemon, trusted again');
    } finally {
        stop_daemon($d);
    }
});
