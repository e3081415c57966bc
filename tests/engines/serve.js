#!/usr/bin/env node
// Starts one emulator on 127.0.0.1 on a free port and prints {"port": N} on stdout once
// it listens; exits when its stdin closes (so a crashed test run leaves no orphans).
//
//   node serve.js dynalite
//   node serve.js s3rver <directory> [<access key id>:<secret> ...]
//
// ENGINES_VERBOSE=1 in the environment makes both log every request (tests/engines.py
// keeps what they print: _NodeProcess.log_text).
//
// Used by tests/engines.py. A launcher rather than the packages' CLIs because
// dynalite's CLI cannot listen on port 0, and s3rver's only accepts its built-in
// S3RVER/S3RVER key while the tests sign with fake credentials of their own. It also
// fixes two s3rver bugs (patchS3rverDeleteRace, fixCopySourceDecoding).
'use strict';

const [engine, ...args] = process.argv.slice(2);

function ready(port) {
  process.stdout.write(JSON.stringify({ engine, port }) + '\n');
}

function exitWithParent(close) {
  process.stdin.on('end', close);
  process.stdin.on('close', close);
  process.stdin.resume();
  process.on('SIGTERM', close);
  process.on('SIGINT', close);
}

// s3rver 3.7.1 bug: DeleteObjects deletes its keys concurrently, and each deletion then
// removes its now-empty parent directories with an unguarded readdirSync; when two keys
// share a directory, one removes it under the other, which fails with ENOENT and turns
// the whole DeleteObjects into a 500 InternalError (botocore retries it). Same logic,
// but a directory that is already gone ends the clean-up instead of failing the request.
function patchS3rverDeleteRace() {
  const fs = require('fs');
  const path = require('path');
  const FilesystemStore = require('s3rver/lib/stores/filesystem');
  // lib/stores/filesystem.js deleteObject, with the readdir guarded
  FilesystemStore.prototype.deleteObject = async function deleteObject(bucket, key) {
    await Promise.all(
      [
        this.getResourcePath(bucket, key, 'object'),
        this.getResourcePath(bucket, key, 'object.md5'),
        this.getResourcePath(bucket, key, 'metadata.json'),
      ].map(filePath =>
        fs.promises.unlink(filePath).catch(err => {
          if (err.code !== 'ENOENT') throw err;
        }),
      ),
    );
    const bucketPath = this.getBucketPath(bucket);
    const parts = key.split('/');
    parts.pop();
    while (parts.length) {
      const dir = path.join(bucketPath, ...parts);
      let entries;
      try {
        entries = fs.readdirSync(dir);
      } catch (err) {
        if (err.code === 'ENOENT') return; // removed by a concurrent deletion
        throw err;
      }
      if (entries.length) return;
      await fs.promises.rmdir(dir).catch(err => {
        if (err.code !== 'ENOENT' && err.code !== 'ENOTEMPTY') throw err;
      });
      parts.pop();
    }
  };
}

// s3rver 3.7.1 bug: CopyObject decodes x-amz-copy-source with decodeURI, which leaves
// escaped reserved characters (%3D, %2B, %40, %3A, %2C, %3B, %24, %26, %23, %3F) as they
// are, so the copy of a key such as "a/=/LATEST" looks for "a/%3D/LATEST" and fails with
// NoSuchKey. S3 URL-decodes the whole source; re-encoding the fully decoded header with
// encodeURI makes s3rver's decodeURI return exactly that.
function fixCopySourceDecoding(ctx, next) {
  const source = ctx.headers['x-amz-copy-source'];
  if (source) {
    const [path, ...query] = source.split('?');
    try {
      ctx.headers['x-amz-copy-source'] = [encodeURI(decodeURIComponent(path)), ...query].join('?');
    } catch (err) {
      // malformed escapes: leave the header for s3rver to refuse
    }
  }
  return next();
}

if (engine === 'dynalite') {
  const dynalite = require('dynalite');
  // in memory (no path); tables are ACTIVE / gone as soon as created / deleted
  const server = dynalite({
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
    verbose: !!process.env.ENGINES_VERBOSE,
  });
  server.listen(0, '127.0.0.1', () => ready(server.address().port));
  exitWithParent(() => process.exit(0));
} else if (engine === 's3rver') {
  const S3rver = require('s3rver');
  // s3rver knows one key pair, S3RVER/S3RVER, and refuses any other key id with 403
  // InvalidAccessKeyId. It checks V2 signatures (presigned URLs) but not V4 ones, so:
  // the key pairs given on the command line are registered, V2-signed requests with them
  // verify as on S3, and any other key id is accepted like moto and dynalite do (its V4
  // requests pass; its V2 ones fail with SignatureDoesNotMatch, its secret being unknown).
  const AWSAccount = require('s3rver/lib/models/account');
  const [directory, ...keyPairs] = args;
  for (const pair of keyPairs) {
    const at = pair.indexOf(':');
    AWSAccount.DUMMY_ACCOUNT.createKeyPair(pair.slice(0, at), pair.slice(at + 1));
  }
  const anyKey = new AWSAccount(AWSAccount.DUMMY_ACCOUNT.id, AWSAccount.DUMMY_ACCOUNT.displayName);
  anyKey.accessKeys = { get: () => '' };
  const registered = AWSAccount.registry.get.bind(AWSAccount.registry);
  AWSAccount.registry.get = keyId => registered(keyId) || anyKey;
  patchS3rverDeleteRace();
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: !process.env.ENGINES_VERBOSE,
    directory,
    // path-style only: the library sends path-style requests to an endpoint_url
    vhostBuckets: false,
  });
  server.middleware.unshift(fixCopySourceDecoding); // before s3rver's own middleware
  server.run().then(
    address => ready(address.port),
    err => {
      console.error(err);
      process.exit(1);
    },
  );
  exitWithParent(() => process.exit(0));
} else {
  console.error('usage: serve.js dynalite | serve.js s3rver <directory> [key:secret ...]');
  process.exit(2);
}
