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

test('every type encodes as BaseIO::loadConfiguration does', function () {
    $cases = array(
        array(array('type' => 'bearer', 'token' => 't'), array('t', 'bearer')),
        array(array('type' => 'github-oauth', 'token' => 'ghp_x'), array('ghp_x', 'x-oauth-basic')),
        array(array('type' => 'gitlab-oauth', 'token' => 'o'), array('o', 'oauth2')),
        array(array('type' => 'gitlab-token', 'token' => 'g'), array('g', 'private-token')),
        array(array('type' => 'gitlab-token', 'token' => 'g', 'username' => null), array('g', 'private-token')),
        array(array('type' => 'bitbucket-oauth', 'consumer-key' => 'k', 'consumer-secret' => 's'), array('k', 's')),
        array(array('type' => 'forgejo-token', 'username' => 'u', 'token' => 'f'), array('u', 'f')),
    );
    foreach ($cases as $case) {
        same($case[1], Credentials::toPair($case[0]), $case[0]['type']);
    }
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
