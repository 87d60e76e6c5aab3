<?php

/* The socket client: reply parsing against the shared fixtures, and real exchanges with a fake daemon. */

use ComposerKeyd\Client;
use ComposerKeyd\DaemonException;

test('status fixture parses as a JSON object', function () {
    $status = Client::parse(http(200, fixture('status.json')));
    same(1, $status['protocol']);
    same('keyring', $status['backend']);
    same(false, $status['locked']);
});

test('error-locked fixture becomes a locked refusal with its message', function () {
    $e = refusal(function () {
        Client::parse(http(423, fixture('error-locked.json')));
    });
    same('locked', $e->getKind());
    same(423, $e->getStatus());
    same('composer-keyd is locked: run `composer-keyd unlock`', $e->getMessage());
    same(false, $e->isUnreachable());
});

test('unknown error kinds are kept, not rejected', function () {
    $e = refusal(function () {
        Client::parse(http(429, '{"error":{"kind":"quota-exceeded","message":"slow down"}}'));
    });
    same('quota-exceeded', $e->getKind());
    same('slow down', $e->getMessage());
});

test('malformed replies are bad-reply and never echo the body', function () {
    $bodies = array(
        'not http at all',
        "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nnop",
        "HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n{\"a\":1}",
        "HTTP/1.1 500 Oops\r\ncontent-length: 9\r\n\r\nsecret-ish",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"a\"",
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n\"s\"",
    );
    foreach ($bodies as $raw) {
        $e = refusal(function () use ($raw) {
            Client::parse($raw);
        });
        same(DaemonException::BAD_REPLY, $e->getKind(), 'kind for ' . json_encode($raw));
        if (strpos($e->getMessage(), 'secret') !== false) {
            throw new \RuntimeException('the body leaked into the message');
        }
    }
});

test('default socket path follows the design', function () {
    $saved = array();
    foreach (array('COMPOSER_KEYD_SOCK', 'XDG_RUNTIME_DIR', 'TMPDIR') as $k) {
        $saved[$k] = getenv($k);
    }
    $rt = sys_get_temp_dir() . '/ckd-rt-' . getmypid();
    mkdir($rt, 0700);
    try {
        putenv('COMPOSER_KEYD_SOCK=/x/s.sock');
        putenv("XDG_RUNTIME_DIR=$rt");
        same('/x/s.sock', Client::defaultSocket());
        putenv('COMPOSER_KEYD_SOCK=');
        same("$rt/composer-keyd/agent.sock", Client::defaultSocket());
        putenv('XDG_RUNTIME_DIR');
        putenv('TMPDIR=/var/tmp/');
        same('/var/tmp/composer-keyd-' . posix_geteuid() . '/agent.sock', Client::defaultSocket());
        putenv('TMPDIR');
        same('/tmp/composer-keyd-' . posix_geteuid() . '/agent.sock', Client::defaultSocket());
    } finally {
        rmdir($rt);
        foreach ($saved as $k => $v) {
            putenv($v === false ? $k : "$k=$v");
        }
    }
});

test('a runtime dir that is missing, not a directory or not ours is passed over, as composer-keyd ssh does', function () {
    $saved = array();
    foreach (array('COMPOSER_KEYD_SOCK', 'XDG_RUNTIME_DIR', 'TMPDIR') as $k) {
        $saved[$k] = getenv($k);
    }
    $base = sys_get_temp_dir() . '/ckd-rtx-' . getmypid();
    mkdir($base, 0700);
    $theirs = "$base/theirs";
    mkdir($theirs, 0700);
    $file = "$base/file";
    touch($file);
    $uid = posix_geteuid();
    // Root owns everything it makes: another user's dir is made by giving it away; anyone
    // else finds one in `/`.
    if ($uid === 0) {
        chown($theirs, 65534);
    } else {
        $theirs = '/';
    }
    try {
        putenv('COMPOSER_KEYD_SOCK');
        putenv("TMPDIR=$base");
        $fallback = "$base/composer-keyd-$uid/agent.sock";
        foreach (array("$base/missing", $file, $theirs) as $rt) {
            putenv("XDG_RUNTIME_DIR=$rt");
            same($fallback, Client::defaultSocket(), "with XDG_RUNTIME_DIR=$rt");
        }
        putenv("XDG_RUNTIME_DIR=$base/");
        same("$base/composer-keyd/agent.sock", Client::defaultSocket());
    } finally {
        rmdir("$base/theirs");
        unlink($file);
        rmdir($base);
        foreach ($saved as $k => $v) {
            putenv($v === false ? $k : "$k=$v");
        }
    }
});

test('origins and credentials cross a real socket, origin and project url-encoded', function () {
    $project = '/home/dev/my shop';
    $q = '?project=' . rawurlencode($project);
    $d = start_daemon(array(
        'GET /v1/origins' . $q => array('body' => fixture('origins.json')),
        'GET /v1/credentials/127.0.0.1%3A8080' . $q => array('body' => fixture('credential-http-basic.json'), 'chunked' => true),
        'GET /v1/credentials/repo.magento.com' . $q => array('body' => fixture('credential-gitlab-token.json'), 'keep_open' => true),
    ));
    try {
        $client = new Client($d['sock'], 5.0, 'test');
        $origins = $client->origins($project);
        same(2, count($origins));
        same(array('origin' => 'repo.magento.com', 'type' => 'http-basic', 'project' => '/home/dev/shop', 'enabled' => true, 'expires' => null), $origins[0]);
        same(7, $client->expiryWarningDays());
        same(false, $origins[1]['enabled']);
        same(null, $origins[1]['project']);
        same('http-basic', $client->credential('127.0.0.1:8080', $project)['type']);
        // keep_open: the reply is complete by Content-Length, so no timeout is spent waiting for EOF.
        same('deploy', $client->credential('repo.magento.com', $project)['username']);
        $log = requests($d);
        same('GET /v1/origins?project=%2Fhome%2Fdev%2Fmy%20shop', $log[0]['request']);
        contains("Connection: close", $log[0]['head']);
    } finally {
        stop_daemon($d);
    }
});

test('an origin list carries expiries and the warning window', function () {
    $body = '{"origins":[{"origin":"github.com","type":"github-oauth","project":null,"enabled":true,"expires":1798675200}],"expiry_warning_days":3}';
    $d = start_daemon(array('GET /v1/origins' => array('body' => $body)));
    try {
        $client = new Client($d['sock'], 5.0, 'test');
        $origins = $client->origins(null);
        same(1798675200, $origins[0]['expires']);
        same(3, $client->expiryWarningDays());
    } finally {
        stop_daemon($d);
    }
});

test('with team sources only the first lookup of an origin in a run reads through', function () {
    $q = '?project=%2Fsrv%2Fshop';
    $cred = array('body' => fixture('credential-http-basic.json'));
    $d = start_daemon(array(
        'GET /v1/origins' . $q => array('body' => '{"origins":[],"teams":true}'),
        'GET /v1/credentials/repo.magento.com' . $q . '&fresh=1' => $cred,
        'GET /v1/credentials/repo.magento.com' . $q => $cred,
        'GET /v1/credentials/repo.magento.com' . $q . '&refresh=1' => $cred,
    ));
    try {
        $client = new Client($d['sock'], 5.0, 'test');
        $client->origins('/srv/shop');
        same(true, $client->hasTeams());
        foreach (array(false, false, true, false) as $refresh) {
            same('http-basic', $client->credential('repo.magento.com', '/srv/shop', $refresh)['type']);
        }
        $seen = array_map(function ($r) {
            return $r['request'];
        }, requests($d));
        same(array(
            'GET /v1/origins' . $q,
            'GET /v1/credentials/repo.magento.com' . $q . '&fresh=1',
            'GET /v1/credentials/repo.magento.com' . $q,
            'GET /v1/credentials/repo.magento.com' . $q . '&refresh=1',
            'GET /v1/credentials/repo.magento.com' . $q,
        ), $seen);
    } finally {
        stop_daemon($d);
    }
});

test('without team sources no lookup carries a flag', function () {
    $d = start_daemon(array(
        'GET /v1/origins' => array('body' => '{"origins":[]}'),
        'GET /v1/credentials/a.example' => array('body' => fixture('credential-http-basic.json')),
    ));
    try {
        $client = new Client($d['sock'], 5.0, 'test');
        $client->origins(null);
        same(false, $client->hasTeams());
        $client->credential('a.example', null);
        $client->credential('a.example', null);
        same(array('GET /v1/origins', 'GET /v1/credentials/a.example', 'GET /v1/credentials/a.example'), array_map(function ($r) {
            return $r['request'];
        }, requests($d)));
    } finally {
        stop_daemon($d);
    }
});

test('store sends a PUT with the credential and no_clobber', function () {
    $d = start_daemon(array(
        'PUT /v1/credentials/127.0.0.1%3A9' => array('body' => '{"outcome":"created","info":{}}'),
    ));
    try {
        $client = new Client($d['sock'], 5.0, 'test');
        same('created', $client->store('127.0.0.1:9', array('type' => 'http-basic', 'username' => 'u', 'password' => 'p')));
        $log = requests($d);
        same(array('credential' => array('type' => 'http-basic', 'username' => 'u', 'password' => 'p'), 'no_clobber' => true), json_decode($log[0]['body'], true));
    } finally {
        stop_daemon($d);
    }
});

test('locked and disabled refusals arrive with their kinds', function () {
    $d = start_daemon(array(
        'GET /v1/credentials/a.example' => array('status' => 423, 'body' => fixture('error-locked.json')),
        'GET /v1/credentials/b.example' => array('status' => 403, 'body' => '{"error":{"kind":"disabled","message":"the credential for b.example is disabled"}}'),
    ));
    try {
        $client = new Client($d['sock'], 5.0, 'test');
        same('locked', refusal(function () use ($client) {
            $client->credential('a.example', null);
        })->getKind());
        same('disabled', refusal(function () use ($client) {
            $client->credential('b.example', null);
        })->getKind());
    } finally {
        stop_daemon($d);
    }
});

test('an absent daemon (no socket file) is absent, without a warning', function () {
    $client = new Client(sys_get_temp_dir() . '/ckd-nothing-' . getmypid() . '/agent.sock', 1.0);
    $e = refusal(function () use ($client) {
        $client->origins('/p');
    });
    same(DaemonException::ABSENT, $e->getKind());
    same(true, $e->isUnreachable());
});

test('a stale socket file (connection refused) is absent, without a warning', function () {
    $dir = sys_get_temp_dir() . '/ckd-stale-' . getmypid();
    mkdir($dir, 0700);
    $path = "$dir/agent.sock";
    $server = stream_socket_server('unix://' . $path);
    fclose($server);
    try {
        same(true, file_exists($path), 'stale socket file');
        $e = refusal(function () use ($path) {
            (new Client($path, 1.0))->origins(null);
        });
        same(DaemonException::ABSENT, $e->getKind());
    } finally {
        @unlink($path);
        @rmdir($dir);
    }
});

test('a hung daemon costs one timeout, not a hang', function () {
    $d = start_daemon(array('*' => array('hang' => true)));
    try {
        $e = refusal(function () use ($d) {
            (new Client($d['sock'], 0.3))->origins(null);
        });
        same(DaemonException::TIMEOUT, $e->getKind());
    } finally {
        stop_daemon($d);
    }
});

test('garbage, early close and oversized replies are bad replies', function () {
    $specs = array(
        array('raw' => "\x00\x01garbage\r\n\r\n"),
        array('close' => true),
        array('bytes' => Client::MAX_REPLY + 10),
        array('raw' => "HTTP/1.1 200 OK\r\n\r\n{not json"),
    );
    foreach ($specs as $spec) {
        $d = start_daemon(array('*' => $spec));
        try {
            $e = refusal(function () use ($d) {
                (new Client($d['sock'], 5.0))->origins(null);
            });
            same(DaemonException::BAD_REPLY, $e->getKind(), json_encode(array_keys($spec)));
        } finally {
            stop_daemon($d);
        }
    }
});

test('a reply of the wrong shape is a bad reply', function () {
    $d = start_daemon(array(
        'GET /v1/origins' => array('body' => '{"origins":[{"origin":5}]}'),
        'GET /v1/credentials/x' => array('body' => '{"credential":"nope"}'),
    ));
    try {
        $client = new Client($d['sock'], 5.0);
        same(DaemonException::BAD_REPLY, refusal(function () use ($client) {
            $client->origins(null);
        })->getKind());
        same(DaemonException::BAD_REPLY, refusal(function () use ($client) {
            $client->credential('x', null);
        })->getKind());
    } finally {
        stop_daemon($d);
    }
});
