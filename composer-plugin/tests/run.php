<?php

/*
 * The plugin's tests: Composer pair encoding, the socket client against the
 * shared wire fixtures and a fake daemon (absent, refused, locked, disabled,
 * hung, malformed), and the plugin's activation inside Debian's Composer.
 * Run: php composer-plugin/tests/run.php   (last line: "N passed, N failed")
 * The runner needs PHP >= 7.4 (proc_open with an argument array); the plugin itself runs on 7.2.5.
 */

error_reporting(E_ALL);
if (PHP_VERSION_ID < 70400) {
    fwrite(STDERR, "the plugin's tests need PHP >= 7.4 (proc_open with an argument array); this is " . PHP_VERSION . "\n");
    exit(2);
}
$root = dirname(__DIR__);
foreach (array('DaemonException', 'SocketTrust', 'Client', 'Credentials', 'ProjectOrigins', 'GitCredentials') as $class) {
    require_once $root . '/src/' . $class . '.php';
}

use ComposerKeyd\Client;
use ComposerKeyd\Credentials;
use ComposerKeyd\DaemonException;

$GLOBALS['passed'] = 0;
$GLOBALS['failed'] = 0;
$GLOBALS['warnings'] = array();
/** Every fake daemon's pid, to prove at the end that none survives the run. */
$GLOBALS['children'] = array();
$fixtures = dirname(dirname(__DIR__)) . '/tests/fixtures/wire';

// Like Composer's ErrorHandler: any warning that escapes is a failure.
set_error_handler(function ($no, $str, $file, $line) {
    if (error_reporting() & $no) {
        $GLOBALS['warnings'][] = "$str at $file:$line";
    }

    return true;
});

function test($name, $fn)
{
    $GLOBALS['warnings'] = array();
    try {
        $fn();
        if ($GLOBALS['warnings'] !== array()) {
            throw new \RuntimeException('PHP warning escaped: ' . implode('; ', $GLOBALS['warnings']));
        }
        $GLOBALS['passed']++;
        echo "ok   $name\n";
    } catch (\Throwable $e) {
        $GLOBALS['failed']++;
        echo "FAIL $name: " . $e->getMessage() . ' (line ' . $e->getLine() . ")\n";
    }
}

function same($expected, $actual, $what = 'value')
{
    if ($expected !== $actual) {
        throw new \RuntimeException("$what: expected " . var_export($expected, true) . ', got ' . var_export($actual, true));
    }
}

function contains($needle, $haystack)
{
    if (strpos($haystack, $needle) === false) {
        throw new \RuntimeException('expected to find ' . var_export($needle, true) . ' in ' . var_export($haystack, true));
    }
}

/** Runs $fn and returns the DaemonException it throws; fails when it throws none. */
function refusal($fn)
{
    try {
        $fn();
    } catch (DaemonException $e) {
        return $e;
    }
    throw new \RuntimeException('expected a DaemonException');
}

function fixture($name)
{
    return rtrim((string) file_get_contents($GLOBALS['fixtures'] . '/' . $name), "\n");
}

function http($status, $body)
{
    return "HTTP/1.1 $status X\r\ncontent-type: application/json\r\ncontent-length: " . strlen($body) . "\r\n\r\n" . $body;
}

/** A fake daemon on a fresh socket, answering from $spec; stopped by stop_daemon(). */
function start_daemon(array $spec)
{
    $dir = sys_get_temp_dir() . '/ckd-php-' . getmypid() . '-' . mt_rand();
    mkdir($dir, 0700);
    file_put_contents("$dir/spec.json", json_encode($spec));
    $cmd = array(PHP_BINARY, __DIR__ . '/fake_daemon.php', "$dir/agent.sock", "$dir/spec.json", "$dir/log");
    // The array form execs PHP directly: no `sh -c` between, so proc_terminate reaches the daemon itself.
    $proc = proc_open($cmd, array(), $pipes);
    $GLOBALS['children'][] = proc_get_status($proc)['pid'];
    // Bounded wait for the socket to appear.
    for ($i = 0; $i < 500 && !file_exists("$dir/agent.sock.ready"); $i++) {
        usleep(10000);
    }
    if (!file_exists("$dir/agent.sock.ready")) {
        throw new \RuntimeException('the fake daemon did not start');
    }

    return array('proc' => $proc, 'dir' => $dir, 'sock' => "$dir/agent.sock");
}

function requests(array $d)
{
    $out = array();
    $lines = is_file($d['dir'] . '/log') ? file($d['dir'] . '/log', FILE_IGNORE_NEW_LINES) : array();
    foreach ($lines ?: array() as $line) {
        $out[] = json_decode($line, true);
    }

    return $out;
}

function stop_daemon(array $d)
{
    proc_terminate($d['proc']);
    // proc_close waits for the exit, so the pid is reaped before the next test.
    proc_close($d['proc']);
    foreach (array('agent.sock', 'agent.sock.ready', 'spec.json', 'log') as $f) {
        @unlink($d['dir'] . '/' . $f);
    }
    @rmdir($d['dir']);
}

/** Whether $pid is still a process (a zombie counts: it was not reaped). */
function alive(int $pid): bool
{
    return is_dir("/proc/$pid");
}

require __DIR__ . '/cases_encoding.php';
require __DIR__ . '/cases_client.php';
require __DIR__ . '/cases_trust.php';
require __DIR__ . '/cases_origins.php';
require __DIR__ . '/cases_plugin.php';
require __DIR__ . '/cases_authtypes.php';
require __DIR__ . '/cases_operations.php';
require __DIR__ . '/cases_git.php';
require __DIR__ . '/cases_teams.php';

test('no fake daemon outlives the tests', function () {
    same(true, count($GLOBALS['children']) > 0, 'fake daemons were started');
    $alive = array_values(array_filter($GLOBALS['children'], 'alive'));
    same(array(), $alive, 'fake daemon pids still running');
});

echo $GLOBALS['passed'] . ' passed, ' . $GLOBALS['failed'] . " failed\n";
exit($GLOBALS['failed'] === 0 ? 0 : 1);
