<?php

/* Composer's pair encoding of every credential type, read from the shared wire fixtures where they exist. */

use ComposerKeyd\Credentials;

test('http-basic fixture encodes as username/password', function () {
    $reply = json_decode(fixture('credential-http-basic.json'), true);
    same(array('0123456789abcdef0123456789abcdef', 'fedcba9876543210fedcba9876543210'), Credentials::toPair($reply['credential']));
});

test('gitlab-token fixture with a username encodes as username/token', function () {
    $reply = json_decode(fixture('credential-gitlab-token.json'), true);
    same(array('deploy', 'glpat-xyz'), Credentials::toPair($reply['credential']));
    same('gitlab-domains', Credentials::domainsKey($reply['credential']['type']));
});

/** tests/fixtures/encoding.json: every type's pair and git answer, shared with src/gitcred/tests.rs. */
function encodingFixture(): array
{
    $doc = json_decode((string) file_get_contents(dirname(dirname(__DIR__)) . '/tests/fixtures/encoding.json'), true);
    if (!is_array($doc) || !isset($doc['types'], $doc['cases'])) {
        throw new \RuntimeException('tests/fixtures/encoding.json is not the encoding fixture');
    }

    return $doc;
}

test('the plugin knows exactly the daemon\'s credential types (shared fixture)', function () {
    $doc = encodingFixture();
    same($doc['types'], Credentials::TYPES, 'Credentials::TYPES');
    $covered = array_values(array_unique(array_map(function ($c) {
        return $c['credential']['type'];
    }, $doc['cases'])));
    same($doc['types'], $covered, 'every type has a case, in order');
});

test('every type encodes as BaseIO::loadConfiguration does (shared fixture)', function () {
    foreach (encodingFixture()['cases'] as $case) {
        $type = $case['credential']['type'];
        $pair = Credentials::toPair($case['credential']);
        same($case['composer'], $pair, $type . ' pair');
        same($case['from_pair'], Credentials::fromPair($pair[0], $pair[1])['type'], $type . ' read back');
        same($case['git'] !== null, Credentials::gitCarries($type, '2.45.2'), $type . ' reaches git before authtype');
        same($case['git_authtype'] !== null, Credentials::gitCarries($type, '2.46.0'), $type . ' reaches git with authtype');
    }
    same(false, Credentials::gitCarries('bearer', null), 'bearer with an unknown git');
});

test('malformed and unknown credentials encode to nothing', function () {
    same(null, Credentials::toPair(array('type' => 'http-basic', 'username' => 'u')));
    same(null, Credentials::toPair(array('type' => 'http-basic', 'username' => 'u', 'password' => '')));
    same(null, Credentials::toPair(array('type' => 'bearer', 'token' => 42)));
    same(null, Credentials::toPair(array('type' => 'ssh-key', 'token' => 't')));
    same(null, Credentials::toPair(array('token' => 't')));
});

test('forge domains follow BaseIO', function () {
    same('github-domains', Credentials::domainsKey('github-oauth'));
    same('gitlab-domains', Credentials::domainsKey('gitlab-oauth'));
    same('forgejo-domains', Credentials::domainsKey('forgejo-token'));
    same(null, Credentials::domainsKey('http-basic'));
    same(null, Credentials::domainsKey('bearer'));
});

test('a GitHub token Composer would throw on is reported, not thrown', function () {
    same(null, Credentials::problem('github-oauth', array('ghp_abc.DEF-1_2', 'x-oauth-basic')));
    contains('characters', (string) Credentials::problem('github-oauth', array("bad token\n", 'x-oauth-basic')));
    same(null, Credentials::problem('http-basic', array("any thing", 'p')));
});

test('prompted pairs map back to wire credentials', function () {
    same(array('type' => 'http-basic', 'username' => 'u', 'password' => 'p'), Credentials::fromPair('u', 'p'));
    same(array('type' => 'bearer', 'token' => 't'), Credentials::fromPair('t', 'bearer'));
    same(array('type' => 'github-oauth', 'token' => 't'), Credentials::fromPair('t', 'x-oauth-basic'));
    same(array('type' => 'gitlab-oauth', 'token' => 't'), Credentials::fromPair('t', 'oauth2'));
    same(array('type' => 'gitlab-token', 'token' => 't'), Credentials::fromPair('t', 'private-token'));
    foreach (array(array('type' => 'bearer', 'token' => 'z'), array('type' => 'http-basic', 'username' => 'a', 'password' => 'b')) as $c) {
        $pair = Credentials::toPair($c);
        same($c, Credentials::fromPair($pair[0], $pair[1]), 'round trip');
    }
});
