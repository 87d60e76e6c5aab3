<?php

/*
 * The plugin's activation inside Debian's Composer classes (package `composer`),
 * against a fake daemon: what IO ends up holding and what the user sees.
 */

use Composer\IO\BufferIO;
use Symfony\Component\Console\Formatter\OutputFormatter;
use Symfony\Component\Console\Output\OutputInterface;

$autoload = '/usr/share/php/Composer/autoload.php';
if (!is_file($autoload)) {
    test('Composer classes are available', function () use ($autoload) {
        throw new \RuntimeException("$autoload is missing: install the Debian package `composer`");
    });

    return;
}
require_once $autoload;
require_once dirname(__DIR__) . '/src/Plugin.php';

/**
 * Activates the plugin for a fresh project against $spec (null: no daemon) and
 * returns [io output, authentications, config].
 */
function activate_with($spec, $verbosity = OutputInterface::VERBOSITY_NORMAL, array $auth = array())
{
    $project = sys_get_temp_dir() . '/ckd-project-' . getmypid() . '-' . mt_rand();
    mkdir($project);
    file_put_contents("$project/composer.json", '{}');
    $project = realpath($project);
    putenv("COMPOSER=$project/composer.json");
    $d = $spec === null ? null : start_daemon(is_callable($spec) ? $spec($project) : $spec);
    putenv('COMPOSER_KEYD_SOCK=' . ($d === null ? "$project/none/agent.sock" : $d['sock']));
    try {
        $io = new BufferIO('', $verbosity, new OutputFormatter(false, \Composer\Factory::createAdditionalStyles()));
        $config = new \Composer\Config(false, $project);
        foreach ($auth as $origin => $pair) {
            $io->setAuthentication($origin, $pair[0], $pair[1]);
        }
        $composer = new \Composer\Composer();
        $composer->setConfig($config);
        $composer->setPackage(new \Composer\Package\RootPackage('test/project', '1.0.0.0', '1.0.0'));
        $plugin = new \ComposerKeyd\Plugin();
        $plugin->activate($composer, $io);

        return array($io->getOutput(), $io->getAuthentications(), $config, $d === null ? array() : requests($d));
    } finally {
        if ($d !== null) {
            stop_daemon($d);
        }
        putenv('COMPOSER');
        putenv('COMPOSER_KEYD_SOCK');
        @unlink("$project/composer.json");
        @rmdir($project);
    }
}

function q($project)
{
    return '?project=' . rawurlencode($project);
}

test('activate loads every origin with Composer\'s pair encoding', function () {
    list($out, $auth, $config, $log) = activate_with(function ($p) {
        return array(
            'GET /v1/origins' . q($p) => array('body' => json_encode(array('origins' => array(
                array('origin' => '127.0.0.1:8080', 'type' => 'http-basic', 'project' => $p, 'enabled' => true),
                array('origin' => 'repo.example.com', 'type' => 'bearer', 'project' => null, 'enabled' => true),
                array('origin' => 'git.example.com', 'type' => 'gitlab-token', 'project' => null, 'enabled' => true),
            )))),
            'GET /v1/credentials/127.0.0.1%3A8080' . q($p) => array('body' => fixture('credential-http-basic.json')),
            'GET /v1/credentials/repo.example.com' . q($p) => array('body' => '{"origin":"repo.example.com","project":null,"credential":{"type":"bearer","token":"tok"}}'),
            'GET /v1/credentials/git.example.com' . q($p) => array('body' => fixture('credential-gitlab-token.json')),
        );
    });
    same(array('username' => '0123456789abcdef0123456789abcdef', 'password' => 'fedcba9876543210fedcba9876543210'), $auth['127.0.0.1:8080']);
    same(array('username' => 'tok', 'password' => 'bearer'), $auth['repo.example.com']);
    same(array('username' => 'deploy', 'password' => 'glpat-xyz'), $auth['git.example.com']);
    same(true, in_array('git.example.com', $config->get('gitlab-domains'), true), 'gitlab-domains extended');
    same(false, $config->get('store-auths'), 'store-auths off');
    same('', $out, 'nothing printed at normal verbosity');
    same(4, count($log));
});

test('no daemon: IO untouched, store-auths untouched, one line at -v only', function () {
    list($out, $auth, $config) = activate_with(null);
    same(array(), $auth);
    same('prompt', $config->get('store-auths'));
    same('', $out);
    list($out) = activate_with(null, OutputInterface::VERBOSITY_VERBOSE);
    same(1, substr_count(trim($out), "\n") + 1, 'one line: ' . $out);
    contains('no composer-keyd daemon', $out);
});

test('locked: the one clear line, once, then Composer goes on', function () {
    list($out, $auth, $config) = activate_with(function ($p) {
        return array(
            'GET /v1/origins' . q($p) => array('body' => fixture('origins.json')),
            '*' => array('status' => 423, 'body' => fixture('error-locked.json')),
        );
    });
    same("composer-keyd is locked: run `composer-keyd unlock`\n", $out);
    same(array(), $auth);
    same('prompt', $config->get('store-auths'), 'Composer\'s own store-auths is back');
});

test('disabled: one line naming it, and nothing fetched for it', function () {
    list($out, $auth, , $log) = activate_with(function ($p) {
        return array('GET /v1/origins' . q($p) => array('body' => json_encode(array('origins' => array(
            array('origin' => 'repo.magento.com', 'type' => 'http-basic', 'project' => null, 'enabled' => false),
        )))));
    });
    same(1, count($log), json_encode($log));
    same("composer-keyd: the credential for repo.magento.com is disabled; run `composer-keyd enable repo.magento.com` to use it\n", $out);
    same(array(), $auth);
    same(1, count($log));
});

test('a hung daemon costs one warning line and no exception', function () {
    list($out, $auth) = activate_with(array('*' => array('hang' => true)));
    contains('did not answer', $out);
    same(1, substr_count($out, "\n"));
    same(array(), $auth);
});

test('a malformed daemon reply costs one warning line and no exception', function () {
    list($out, $auth, $config) = activate_with(array('*' => array('raw' => 'HTTP/1.1 200 OK' . "\r\n\r\n[1,")));
    contains('composer-keyd: the daemon\'s reply is not a JSON object', $out);
    same(array(), $auth);
    same('prompt', $config->get('store-auths'));
});

test('credentials from Composer\'s own config win over the daemon', function () {
    list($out, $auth, , $log) = activate_with(function ($p) {
        return array('GET /v1/origins' . q($p) => array('body' => fixture('origins.json')));
    }, OutputInterface::VERBOSITY_NORMAL, array('repo.magento.com' => array('mine', 'pw')));
    same(array('username' => 'mine', 'password' => 'pw'), $auth['repo.magento.com']);
    same(1, count($log), 'no credential fetched');
});
