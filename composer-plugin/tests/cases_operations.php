<?php

/*
 * The installer's pre-operations-exec event: the origins of the packages a run
 * installs or updates are loaded before any download or clone, and no others.
 */

use ComposerKeyd\ProjectOrigins;
use Symfony\Component\Console\Output\OutputInterface;

if (!class_exists('Composer\Installer\InstallerEvent')) {
    // cases_plugin.php already failed, naming the Debian package.
    return;
}

/** A package as Composer's transaction holds it, with a dist and a git source. */
function op_package(string $name, ?string $dist, ?string $source): \Composer\Package\Package
{
    $package = new \Composer\Package\Package($name, '1.0.0.0', '1.0.0');
    if ($dist !== null) {
        $package->setDistType('zip');
        $package->setDistUrl($dist);
    }
    if ($source !== null) {
        $package->setSourceType('git');
        $package->setSourceUrl($source);
        $package->setSourceReference('abc');
    }

    return $package;
}

/** The operations of one run: an install, an update, a removal and an alias. */
function sample_operations(): array
{
    $old = op_package('acme/upd', 'https://old.example.com/u.zip', null);
    $new = op_package('acme/upd', 'https://new.example.com/u.zip', null);
    $inst = op_package('acme/widget', null, 'http://127.0.0.1:9001/git/widget.git');

    return array(
        new \Composer\DependencyResolver\Operation\InstallOperation($inst),
        new \Composer\DependencyResolver\Operation\UpdateOperation($old, $new),
        new \Composer\DependencyResolver\Operation\UninstallOperation(op_package('acme/gone', 'https://gone.example.com/g.zip', 'https://gone.example.com/g.git')),
        new \Composer\DependencyResolver\Operation\MarkAliasInstalledOperation(new \Composer\Package\AliasPackage($inst, '9999999-dev', 'dev-main')),
    );
}

test('operations: URLs of what is installed or updated, not of what is removed or replaced', function () {
    same(
        array('http://127.0.0.1:9001/git/widget.git', 'https://new.example.com/u.zip'),
        ProjectOrigins::operationUrls(array_merge(sample_operations(), array('garbage', null)))
    );
});

/** A transaction whose operations are $ops, as Composer's LocalRepoTransaction hands them over. */
function transaction_of(array $ops): \Composer\DependencyResolver\Transaction
{
    $transaction = (new \ReflectionClass('Composer\DependencyResolver\Transaction'))->newInstanceWithoutConstructor();
    $property = new \ReflectionProperty('Composer\DependencyResolver\Transaction', 'operations');
    $property->setAccessible(true);
    $property->setValue($transaction, $ops);

    return $transaction;
}

test('pre-operations-exec loads the origins of the run\'s packages, and only those', function () {
    $daemon = daemon_with(array('127.0.0.1:8080', '127.0.0.1:9001', 'new.example.com', 'gone.example.com', 'old.example.com', 'repo.magento.com'));
    $repos = array(array('type' => 'composer', 'url' => 'http://127.0.0.1:8080'), array('packagist.org' => false));
    $seen = array();
    $after = function ($plugin, $composer, $io) use (&$seen) {
        $seen['activation'] = array_keys($io->getAuthentications());
        // Through Composer's own dispatcher, as the installer fires it.
        $dispatcher = new \Composer\EventDispatcher\EventDispatcher($composer, $io);
        $dispatcher->addSubscriber($plugin);
        $event = new \Composer\Installer\InstallerEvent('pre-operations-exec', $composer, $io, true, true, transaction_of(sample_operations()));
        $dispatcher->dispatch($event->getName(), $event);
        // A second event asks the daemon for nothing again.
        $dispatcher->dispatch($event->getName(), $event);
        $seen['git'] = array();
        for ($i = 0; $i < (int) getenv('GIT_CONFIG_COUNT'); $i++) {
            $seen['git'][] = getenv("GIT_CONFIG_KEY_$i");
        }
    };
    putenv('COMPOSER_KEYD_BIN=' . PHP_BINARY);
    $count = getenv('GIT_CONFIG_COUNT');
    try {
        list($out, $auth, , $log) = activate_with($daemon, OutputInterface::VERBOSITY_NORMAL, array(), $repos, null, null, $after);
    } finally {
        putenv('COMPOSER_KEYD_BIN');
        reset_git_config($count);
    }
    same(array('127.0.0.1:8080'), $seen['activation'], 'activation: the project\'s own repository only');
    same(array('127.0.0.1:8080', '127.0.0.1:9001', 'new.example.com'), fetched($log));
    same(array('127.0.0.1:8080', '127.0.0.1:9001', 'new.example.com'), array_keys($auth));
    foreach (array('127.0.0.1:9001', 'new.example.com') as $origin) {
        same(true, in_array("credential.https://$origin.helper", $seen['git'], true), "git helper for $origin");
    }
    same('', $out, 'nothing printed at normal verbosity');
});

/** Drops the GIT_CONFIG_* entries a test added, back to $count (false: none). */
function reset_git_config($count): void
{
    $n = (int) getenv('GIT_CONFIG_COUNT');
    $keep = $count === false ? 0 : (int) $count;
    for ($i = $keep; $i < $n; $i++) {
        putenv("GIT_CONFIG_KEY_$i");
        putenv("GIT_CONFIG_VALUE_$i");
        unset($_SERVER["GIT_CONFIG_KEY_$i"], $_ENV["GIT_CONFIG_KEY_$i"], $_SERVER["GIT_CONFIG_VALUE_$i"], $_ENV["GIT_CONFIG_VALUE_$i"]);
    }
    if ($count === false) {
        putenv('GIT_CONFIG_COUNT');
        unset($_SERVER['GIT_CONFIG_COUNT'], $_ENV['GIT_CONFIG_COUNT']);
    } else {
        putenv("GIT_CONFIG_COUNT=$count");
        $_SERVER['GIT_CONFIG_COUNT'] = $_ENV['GIT_CONFIG_COUNT'] = $count;
    }
}

test('pre-operations-exec with no daemon is silent and harmless', function () {
    $ran = false;
    $after = function ($plugin, $composer, $io) use (&$ran) {
        $event = new \Composer\Installer\InstallerEvent('pre-operations-exec', $composer, $io, true, true, transaction_of(sample_operations()));
        $plugin->onPreOperationsExec($event);
        $ran = true;
    };
    list($out, $auth) = activate_with(null, OutputInterface::VERBOSITY_NORMAL, array(), null, null, null, $after);
    same(true, $ran);
    same('', $out);
    same(array(), $auth);
});
