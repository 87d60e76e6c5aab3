<?php

/*
 * Composer 2.9's custom-headers and client-certificate: their pair encoding, the
 * version gate, and that a prompt-captured pair of either type is never offered as http-basic.
 */

use ComposerKeyd\Credentials;
use Symfony\Component\Console\Output\OutputInterface;

test('custom-headers fixture encodes as BaseIO: the JSON list, then the marker', function () {
    $reply = json_decode(fixture('credential-custom-headers.json'), true);
    $headers = array('X-Api-Key: k-123', 'X-Tenant: acme');
    same(array((string) json_encode($headers), 'custom-headers'), Credentials::toPair($reply['credential']));
    same($headers, json_decode(Credentials::toPair($reply['credential'])[0], true), 'AuthHelper decodes it back');
});

test('client-certificate fixture encodes as BaseIO: the marker, then the ssl options as JSON', function () {
    $reply = json_decode(fixture('credential-client-certificate.json'), true);
    $ssl = array('local_cert' => '/home/u/.certs/client.pem', 'local_pk' => '/home/u/.certs/client.key', 'passphrase' => 'p4ss');
    same(array('client-certificate', (string) json_encode($ssl)), Credentials::toPair($reply['credential']));
    same(
        array('client-certificate', '{"local_cert":"\/c.pem"}'),
        Credentials::toPair(array('type' => 'client-certificate', 'local-cert' => '/c.pem', 'local-pk' => null))
    );
});

test('malformed newer credentials encode to nothing', function () {
    same(null, Credentials::toPair(array('type' => 'custom-headers', 'headers' => array())));
    same(null, Credentials::toPair(array('type' => 'custom-headers', 'headers' => 'X-A: 1')));
    same(null, Credentials::toPair(array('type' => 'custom-headers', 'headers' => array("X-A: 1\r\nX-Injected: 2"))));
    same(null, Credentials::toPair(array('type' => 'custom-headers', 'headers' => array('no colon'))));
    same(null, Credentials::toPair(array('type' => 'custom-headers', 'headers' => array(7))));
    same(null, Credentials::toPair(array('type' => 'client-certificate', 'local-pk' => '/k')));
    same(null, Credentials::toPair(array('type' => 'client-certificate', 'local-cert' => '/c', 'passphrase' => '')));
});

test('the newer types need Composer 2.9; the others do not', function () {
    contains('the custom-headers type needs Composer 2.9', (string) Credentials::unsupported('custom-headers', '2.5.5'));
    contains('needs Composer 2.9', (string) Credentials::unsupported('client-certificate', '2.2.29'));
    contains('needs Composer 2.9', (string) Credentials::unsupported('custom-headers', '2.8.12'));
    foreach (array('2.9.0', '2.10.2', '3.0.0', '2.9-dev+0123abcd', '0123456789abcdef0123456789abcdef01234567') as $v) {
        same(null, Credentials::unsupported('custom-headers', $v), $v);
    }
    same(null, Credentials::unsupported('http-basic', '2.2.29'));
});

test('prompt capture never takes a custom-headers or client-certificate pair for http-basic', function () {
    same(array('type' => 'custom-headers'), Credentials::fromPair('["X-Api-Key: secret"]', 'custom-headers'));
    same(array('type' => 'client-certificate'), Credentials::fromPair('client-certificate', '{"local_cert":"\/c","passphrase":"pp"}'));
});

if (!function_exists('activate_with')) {
    return;
}

test('on Composer < 2.9 a custom-headers credential costs one line and sets nothing', function () {
    if (version_compare(\Composer\Composer::VERSION, '2.9', '>=')) {
        throw new \RuntimeException('these plugin cases expect Debian\'s Composer 2.5.5, found ' . \Composer\Composer::VERSION);
    }
    list($out, $auth, , $log) = activate_with(function ($p) {
        return array(
            'GET /v1/origins' . q($p) => array('body' => json_encode(array('origins' => array(
                array('origin' => 'repo.example.com', 'type' => 'custom-headers', 'project' => null, 'enabled' => true),
            )))),
            'GET /v1/credentials/repo.example.com' . q($p) => array('body' => fixture('credential-custom-headers.json')),
        );
    });
    same("composer-keyd: not using the credential for repo.example.com: the custom-headers type needs Composer 2.9 or later (this is 2.5.5)\n", $out);
    same(array(), $auth);
    same(2, count($log));
});

test('prompted custom-headers and client-certificate pairs are not offered to the daemon', function () {
    $after = function ($plugin, $composer, $io) {
        $io->setUserInputs(array('y', 'y', 'y'));
        $io->setAuthentication('hdr.example.com', '["X-Api-Key: prompt-secret"]', 'custom-headers');
        $io->setAuthentication('cert.example.com', 'client-certificate', '{"local_cert":"\/c","passphrase":"prompt-pass"}');
        $io->setAuthentication('basic.example.com', 'u', 'p');
        $plugin->onSuccess();
    };
    list(, , , $log) = activate_with(function ($p) {
        return array(
            'GET /v1/origins' . q($p) => array('body' => '{"origins":[]}'),
            '*' => array('body' => '{"outcome":"created","info":{}}'),
        );
    }, OutputInterface::VERBOSITY_NORMAL, array(), null, null, null, $after);
    $puts = array();
    foreach ($log as $entry) {
        if (strpos($entry['request'], 'PUT ') === 0) {
            $puts[] = $entry['request'];
            same(false, strpos($entry['body'], 'prompt-'), 'no newer-type secret sent');
        }
    }
    same(array('PUT /v1/credentials/basic.example.com'), $puts);
});
