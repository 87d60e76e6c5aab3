<?php

/* GitCredentials: the GIT_CONFIG_* entries that point Composer's git children at the helper. */

use ComposerKeyd\GitCredentials;

test('git helper entries are appended after existing GIT_CONFIG_COUNT entries, once', function () {
    $bin = tempnam(sys_get_temp_dir(), 'ckd-bin');
    chmod($bin, 0700);
    putenv('COMPOSER_KEYD_BIN=' . $bin);
    putenv('GIT_CONFIG_COUNT=1');
    putenv('GIT_CONFIG_KEY_0=core.askPass');
    putenv('GIT_CONFIG_VALUE_0=');
    try {
        same(2, GitCredentials::configure(array('127.0.0.1:8080'), "/srv/it's", true), 'added');
        same('3', getenv('GIT_CONFIG_COUNT'), 'count');
        same('3', $_SERVER['GIT_CONFIG_COUNT'], '$_SERVER count');
        same('core.askPass', getenv('GIT_CONFIG_KEY_0'), 'kept');
        same('credential.https://127.0.0.1:8080.helper', getenv('GIT_CONFIG_KEY_1'), 'https key');
        same('credential.http://127.0.0.1:8080.helper', getenv('GIT_CONFIG_KEY_2'), 'http key');
        same("!'" . $bin . "' git-credential --strict --project '/srv/it'\\''s'", getenv('GIT_CONFIG_VALUE_1'), 'value');
        same(0, GitCredentials::configure(array('127.0.0.1:8080'), "/srv/it's", true), 'second activation');
        same(1, GitCredentials::configure(array('github.com'), null, false), 'https only');
        same('credential.https://github.com.helper', getenv('GIT_CONFIG_KEY_3'), 'github key');
        same('4', getenv('GIT_CONFIG_COUNT'), 'count after');
        putenv('COMPOSER_KEYD_BIN=' . $bin . '-missing');
        same(1, GitCredentials::configure(array('example.com'), null, false), 'no binary: a helper that stops git');
        same('credential.https://example.com.helper', getenv('GIT_CONFIG_KEY_4'), 'its key');
        // What git runs: `sh -c 'VALUE "$@"' VALUE get`, the request on stdin.
        $value = substr((string) getenv('GIT_CONFIG_VALUE_4'), 1);
        foreach (array('get' => "quit=1\n", 'store' => '', 'erase' => '') as $op => $want) {
            $p = proc_open(array('/bin/sh', '-c', $value . ' "$@"', $value, $op), array(array('pipe', 'r'), array('pipe', 'w'), array('pipe', 'w')), $pipes);
            fwrite($pipes[0], "protocol=https\nhost=example.com\n\n");
            fclose($pipes[0]);
            $out = stream_get_contents($pipes[1]);
            $err = stream_get_contents($pipes[2]);
            fclose($pipes[1]);
            fclose($pipes[2]);
            same(0, proc_close($p), $op . ' exit');
            same($want, $out, $op . ' answer');
            same($op === 'get' ? GitCredentials::NO_BINARY_LINE . "\n" : '', $err, $op . ' line');
        }
    } finally {
        foreach (array('COMPOSER_KEYD_BIN', 'GIT_CONFIG_COUNT', 'GIT_CONFIG_KEY_0', 'GIT_CONFIG_VALUE_0', 'GIT_CONFIG_KEY_1', 'GIT_CONFIG_VALUE_1', 'GIT_CONFIG_KEY_2', 'GIT_CONFIG_VALUE_2', 'GIT_CONFIG_KEY_3', 'GIT_CONFIG_VALUE_3', 'GIT_CONFIG_KEY_4', 'GIT_CONFIG_VALUE_4') as $name) {
            putenv($name);
            unset($_SERVER[$name], $_ENV[$name]);
        }
        unlink($bin);
    }
});

test('the helper\'s --project keeps every byte under a UTF-8 locale', function () {
    $bin = tempnam(sys_get_temp_dir(), 'ckd-bin');
    chmod($bin, 0700);
    putenv('COMPOSER_KEYD_BIN=' . $bin);
    $locale = setlocale(LC_CTYPE, '0');
    $utf8 = setlocale(LC_CTYPE, 'C.UTF-8', 'C.utf8', 'en_US.UTF-8');
    try {
        if ($utf8 === false) {
            throw new \RuntimeException('no UTF-8 locale to test under (Debian: C.UTF-8 is in libc-bin)');
        }
        $project = "/srv/shop\xff\xfe'x";
        same(1, GitCredentials::configure(array('repo.example'), $project, false), 'added');
        $value = getenv('GIT_CONFIG_VALUE_0');
        same(true, strpos($value, "shop\xff\xfe") !== false, 'the bytes are kept: ' . bin2hex($value));
        // What sh makes of the value is the very path.
        $out = array();
        exec('/bin/sh -c ' . GitCredentials::shQuote('printf %s ' . substr($value, strpos($value, '--project ') + 10)), $out);
        same(bin2hex($project), bin2hex(implode("\n", $out)), 'sh reads back the path');
    } finally {
        setlocale(LC_CTYPE, $locale);
        foreach (array('COMPOSER_KEYD_BIN', 'GIT_CONFIG_COUNT', 'GIT_CONFIG_KEY_0', 'GIT_CONFIG_VALUE_0') as $name) {
            putenv($name);
            unset($_SERVER[$name], $_ENV[$name]);
        }
        unlink($bin);
    }
});

test('the binary that installed the plugin is found without PATH', function () {
    $dir = sys_get_temp_dir() . '/ckd-installed-' . getmypid();
    mkdir($dir, 0700);
    $bin = $dir . '/composer-keyd';
    touch($bin);
    chmod($bin, 0700);
    $manifest = $dir . '/composer.json';
    try {
        file_put_contents($manifest, json_encode(array('extra' => array('composer-keyd-bin' => $bin))));
        same($bin, GitCredentials::installedBy($manifest), 'recorded binary');
        chmod($bin, 0600);
        same(null, GitCredentials::installedBy($manifest), 'not executable');
        file_put_contents($manifest, '{"extra": {}}');
        same(null, GitCredentials::installedBy($manifest), 'not recorded');
        same(null, GitCredentials::installedBy($dir . '/missing.json'), 'no manifest');
    } finally {
        @unlink($manifest);
        @unlink($bin);
        @rmdir($dir);
    }
});
