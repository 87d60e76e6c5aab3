<?php

/* Which origins a project names before any download: repositories, composer.lock, forge domains over ssh. */

use ComposerKeyd\ProjectOrigins;

/** host[:port], as Url::getOrigin gives it for plain hosts. */
function simple_origin(string $url): string
{
    $port = parse_url($url, PHP_URL_PORT);

    return parse_url($url, PHP_URL_HOST) . ($port ? ':' . $port : '');
}

test('repositories: composer, vcs, git and inline package URLs; local paths are not origins', function () {
    $repos = array(
        'packagist.org' => array('type' => 'composer', 'url' => 'https://repo.packagist.org'),
        array('type' => 'composer', 'url' => 'repo.example.com:8443'),
        array('type' => 'vcs', 'url' => 'https://Git.Example.com/acme/widget.git'),
        array('type' => 'git', 'url' => 'http://127.0.0.1:9000/x.git'),
        array('type' => 'package', 'package' => array('name' => 'a/b', 'version' => '1.0.0',
            'dist' => array('type' => 'zip', 'url' => 'https://dl.example.net/b.zip'))),
        array('type' => 'package', 'package' => array(
            array('name' => 'a/c', 'version' => '1.0.0', 'source' => array('type' => 'git', 'url' => 'https://src.example.org/c.git', 'reference' => 'x')),
        )),
        array('type' => 'artifact', 'url' => '/srv/artifacts'),
        array('type' => 'path', 'url' => '../lib'),
        array('packagist.org' => false),
        false,
    );
    same(array(
        'repo.packagist.org' => 'repo.packagist.org',
        'repo.example.com:8443' => 'repo.example.com:8443',
        'git.example.com' => 'Git.Example.com',
        '127.0.0.1:9000' => '127.0.0.1:9000',
        'dl.example.net' => 'dl.example.net',
        'src.example.org' => 'src.example.org',
    ), ProjectOrigins::collect($repos, null, 'simple_origin', array()));
});

test('composer.lock: dist and source URLs of packages and packages-dev', function () {
    $lock = array(
        'packages' => array(
            array('name' => 'a/a', 'dist' => array('url' => 'https://cdn.example.com/a.zip'), 'source' => array('url' => 'https://git.example.com/a.git')),
        ),
        'packages-dev' => array(
            array('name' => 'a/d', 'dist' => array('url' => 'https://dev.example.com:8080/d.zip')),
            'garbage',
        ),
    );
    same(array('cdn.example.com', 'git.example.com', 'dev.example.com:8080'), array_keys(ProjectOrigins::collect(array(), $lock, 'simple_origin', array())));
});

test('ssh and git URLs count only when they point at a forge domain', function () {
    $forges = array('github.com', 'gitlab.example.com', 'codeberg.org');
    same('github.com', ProjectOrigins::originOf('git@github.com:acme/private.git', 'simple_origin', $forges));
    same('gitlab.example.com', ProjectOrigins::originOf('ssh://git@GitLab.example.com:2222/acme/x.git', 'simple_origin', $forges));
    same('codeberg.org', ProjectOrigins::originOf('git://codeberg.org/acme/x.git', 'simple_origin', $forges));
    same(null, ProjectOrigins::originOf('git@git.internal:acme/x.git', 'simple_origin', $forges));
    same(null, ProjectOrigins::originOf('/srv/repo.git', 'simple_origin', $forges));
    same(null, ProjectOrigins::originOf('file:///srv/repo.git', 'simple_origin', $forges));
});

test('the lock is found beside composer.json, or beside a COMPOSER file of another name', function () {
    $dir = sys_get_temp_dir() . '/ckd-lock-' . getmypid();
    mkdir($dir, 0700);
    try {
        same(null, ProjectOrigins::readLock("$dir/composer.json"));
        file_put_contents("$dir/composer.lock", '{"packages":[]}');
        same(array('packages' => array()), ProjectOrigins::readLock("$dir/composer.json"));
        file_put_contents("$dir/other.txt.lock", '{"packages":[1]}');
        same(array('packages' => array(1)), ProjectOrigins::readLock("$dir/other.txt"));
        file_put_contents("$dir/composer.lock", '{not json');
        same(null, ProjectOrigins::readLock("$dir/composer.json"));
    } finally {
        @unlink("$dir/composer.lock");
        @unlink("$dir/other.txt.lock");
        @rmdir($dir);
    }
});
