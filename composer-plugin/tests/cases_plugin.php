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
 * returns [io output, authentications, config, requests]. The project names $repos
 * (default: the origins the fixtures use) and has $lock as its composer.lock.
 * $after($plugin, $composer, $io) runs after activation, while the daemon still answers.
 */
function activate_with($spec, $verbosity = OutputInterface::VERBOSITY_NORMAL, array $auth = array(), ?array $repos = null, ?array $lock = null, ?int $socketDirOwner = null, ?callable $after = null)
{
    if ($repos === null) {
        $repos = array();
        foreach (array('http://127.0.0.1:8080', 'https://repo.example.com', 'https://git.example.com/acme/x.git', 'https://repo.magento.com', 'https://repo.packagist.com/acme/') as $url) {
            $repos[] = array('type' => 'composer', 'url' => $url);
        }
    }
    $project = sys_get_temp_dir() . '/ckd-project-' . getmypid() . '-' . mt_rand();
    mkdir($project);
    file_put_contents("$project/composer.json", json_encode(array('repositories' => $repos)));
    if ($lock !== null) {
        file_put_contents("$project/composer.lock", json_encode($lock));
    }
    $project = realpath($project);
    putenv("COMPOSER=$project/composer.json");
    $d = $spec === null ? null : start_daemon(is_callable($spec) ? $spec($project) : $spec);
    if ($socketDirOwner !== null) {
        chown($d['dir'], $socketDirOwner);
    }
    putenv('COMPOSER_KEYD_SOCK=' . ($d === null ? "$project/none/agent.sock" : $d['sock']));
    try {
        $io = new BufferIO('', $verbosity, new OutputFormatter(false, \Composer\Factory::createAdditionalStyles()));
        $config = new \Composer\Config(false, $project);
        $config->merge(array('repositories' => $repos));
        foreach ($auth as $origin => $pair) {
            $io->setAuthentication($origin, $pair[0], $pair[1]);
        }
        $composer = new \Composer\Composer();
        $composer->setConfig($config);
        $root = new \Composer\Package\RootPackage('test/project', '1.0.0.0', '1.0.0');
        $root->setRepositories($repos);
        $composer->setPackage($root);
        $plugin = new \ComposerKeyd\Plugin();
        $plugin->activate($composer, $io);
        if ($after !== null) {
            $after($plugin, $composer, $io);
        }

        return array($io->getOutput(), $io->getAuthentications(), $config, $d === null ? array() : requests($d));
    } finally {
        if ($d !== null) {
            stop_daemon($d);
        }
        putenv('COMPOSER');
        putenv('COMPOSER_KEYD_SOCK');
        @unlink("$project/composer.json");
        @unlink("$project/composer.lock");
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

/** A daemon holding $origins (all http-basic, enabled), answering each credential. */
function daemon_with(array $origins): callable
{
    return function ($p) use ($origins) {
        $list = array();
        $spec = array();
        foreach ($origins as $origin) {
            $list[] = array('origin' => $origin, 'type' => 'http-basic', 'project' => null, 'enabled' => true);
            $spec['GET /v1/credentials/' . rawurlencode($origin) . q($p)] = array('body' => json_encode(array(
                'origin' => $origin, 'project' => null, 'credential' => array('type' => 'http-basic', 'username' => "u-$origin", 'password' => 'p'),
            )));
        }
        $spec['GET /v1/origins' . q($p)] = array('body' => json_encode(array('origins' => $list)));

        return $spec;
    };
}

/** The origins whose credentials the daemon was asked for. */
function fetched(array $log): array
{
    $out = array();
    foreach ($log as $entry) {
        if (preg_match('{^GET /v1/credentials/([^?]+)}', $entry['request'], $m)) {
            $out[] = rawurldecode($m[1]);
        }
    }

    return $out;
}

test('least privilege: only the origins the project names are fetched at activation', function () {
    $repos = array(array('type' => 'composer', 'url' => 'http://127.0.0.1:8080'), array('packagist.org' => false));
    list(, $auth, , $log) = activate_with(daemon_with(array('repo.magento.com', '127.0.0.1:8080', 'github.com')), OutputInterface::VERBOSITY_NORMAL, array(), $repos);
    same(array('127.0.0.1:8080'), fetched($log));
    same(array('127.0.0.1:8080'), array_keys($auth));
});

test('least privilege: composer.lock\'s hosts and a forge reached over ssh are loaded', function () {
    $repos = array(array('type' => 'vcs', 'url' => 'git@github.com:acme/private.git'), array('packagist.org' => false));
    $lock = array('packages' => array(array('name' => 'acme/a', 'dist' => array('type' => 'zip', 'url' => 'https://CDN.example.com/a.zip'))));
    list(, $auth, , $log) = activate_with(daemon_with(array('cdn.example.com', 'github.com', 'repo.magento.com')), OutputInterface::VERBOSITY_NORMAL, array(), $repos, $lock);
    same(array('cdn.example.com', 'github.com'), fetched($log));
    // Set under Composer's own spelling of the origin, which is what it looks up.
    same(array('CDN.example.com', 'github.com'), array_keys($auth));
});

test('least privilege: packagist.org is loaded while Composer\'s default repository is on', function () {
    list(, , , $log) = activate_with(daemon_with(array('packagist.org', 'repo.magento.com')), OutputInterface::VERBOSITY_NORMAL, array(), array());
    same(array('packagist.org'), fetched($log));
    list(, , , $log) = activate_with(daemon_with(array('packagist.org')), OutputInterface::VERBOSITY_NORMAL, array(), array(array('packagist.org' => false)));
    same(array(), fetched($log));
});

test('an untrusted socket: one line naming it, nothing sent, IO and store-auths untouched', function () {
    list($out, $auth, $config, $log) = activate_with(daemon_with(array('127.0.0.1:8080')), OutputInterface::VERBOSITY_NORMAL, array(), null, null, 65534);
    same(array(), $log, 'requests the socket received');
    same(array(), $auth);
    same('prompt', $config->get('store-auths'));
    same(1, substr_count($out, "\n"), $out);
    contains('composer-keyd: refusing to use ', $out);
    contains('is owned by uid 65534 (nobody), not by you (uid 0) or root; remove it', $out);
});

test('on a forge host, a type git cannot take is not given to Composer, with one line', function () {
    // Util\Git retries ANY failed git command on github-domains, gitlab-domains and
    // bitbucket.org with IO's credential in the URL: only types the git helper hands to git.
    $repos = array(
        array('type' => 'vcs', 'url' => 'https://bitbucket.org/acme/x.git'),
        array('type' => 'vcs', 'url' => 'https://github.com/acme/y'),
        array('type' => 'composer', 'url' => 'https://repo.example.com'),
    );
    list($out, $auth) = activate_with(function ($p) {
        return array(
            'GET /v1/origins' . q($p) => array('body' => json_encode(array('origins' => array(
                array('origin' => 'bitbucket.org', 'type' => 'bitbucket-oauth', 'project' => null, 'enabled' => true),
                array('origin' => 'github.com', 'type' => 'github-oauth', 'project' => null, 'enabled' => true),
                array('origin' => 'repo.example.com', 'type' => 'bitbucket-oauth', 'project' => null, 'enabled' => true),
            )))),
            'GET /v1/credentials/bitbucket.org' . q($p) => array('body' => '{"origin":"bitbucket.org","project":null,"credential":{"type":"bitbucket-oauth","consumer-key":"ck","consumer-secret":"cs-secret"}}'),
            'GET /v1/credentials/github.com' . q($p) => array('body' => '{"origin":"github.com","project":null,"credential":{"type":"github-oauth","token":"ghp_abc"}}'),
            'GET /v1/credentials/repo.example.com' . q($p) => array('body' => '{"origin":"repo.example.com","project":null,"credential":{"type":"bitbucket-oauth","consumer-key":"k2","consumer-secret":"s2"}}'),
        );
    }, OutputInterface::VERBOSITY_NORMAL, array(), $repos);
    same(false, isset($auth['bitbucket.org']), 'bitbucket-oauth on bitbucket.org withheld');
    same(array('username' => 'ghp_abc', 'password' => 'x-oauth-basic'), $auth['github.com'], 'a token git takes');
    same(array('username' => 'k2', 'password' => 's2'), $auth['repo.example.com'], 'not a forge host: --strict guards git there');
    same(1, substr_count($out, 'not using the bitbucket-oauth credential for bitbucket.org: git cannot take it'), $out);
    same(false, strpos($out, 'cs-secret'), 'no secret in the line');
});
