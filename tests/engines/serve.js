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
// fixes five s3rver bugs (patchS3rverDeleteRace, patchS3rverAtomicWrites,
// patchS3rverConditionalWrites, patchS3rverNestedCommonPrefixes, fixCopySourceDecoding)
// and one dynalite bug (survivePeersHangingUp).
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
// (The unlinks also hold the key's lock, see patchS3rverAtomicWrites: a GET sees the
// whole object or none of it; and a DeleteObject with If-Match checks it under that
// lock, see patchS3rverConditionalWrites.)
function patchS3rverDeleteRace() {
  const fs = require('fs');
  const path = require('path');
  const FilesystemStore = require('s3rver/lib/stores/filesystem');
  // the original, unlocked (patchS3rverAtomicWrites, installed after this, locks it)
  const readMetadata = FilesystemStore.prototype.getMetadata;
  // lib/stores/filesystem.js deleteObject, with the readdir guarded
  FilesystemStore.prototype.deleteObject = async function deleteObject(bucket, key) {
    const condition = writeConditions.getStore();
    await withKeyLock(bucket, key, async () => {
      await checkWriteCondition(condition, bucket, key, () =>
        readMetadata.call(this, bucket, key),
      );
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
    });
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

// One lock per object key: a promise chain per "bucket/key", each holder running once
// the previous one has settled. Held only for short file-system steps (renames, unlinks,
// opening a file and reading its metadata), never while a body streams.
const keyLocks = new Map();
function withKeyLock(bucket, key, fn) {
  const id = `${bucket}/${key}`;
  const previous = keyLocks.get(id) || Promise.resolve();
  const result = previous.then(() => fn());
  const tail = result.then(
    () => {},
    () => {},
  );
  keyLocks.set(id, tail);
  tail.then(() => {
    if (keyLocks.get(id) === tail) keyLocks.delete(id);
  });
  return result;
}

// s3rver 3.7.1 bug: PutObject is not atomic. lib/stores/filesystem.js keeps an object as
// three files (<key>._S3rver_object, ._S3rver_object.md5 = the ETag, ._S3rver_metadata.json)
// and putObject rewrites them in place, one after the other (it even reports success
// before the object file is flushed). A GET racing a PUT of the same key then streams
// a truncated or half-new body under the old ETag and Content-Length (or fails with 500
// or a cut connection), where S3 returns either the whole old object or the whole new
// one. copyObject copies in place the same way (and, with REPLACE metadata onto another
// key, leaves that key's old .md5 behind), and CompleteMultipartUpload goes through
// putObject. So: putObject writes the three files to temporary files in the storage
// root (not in the bucket, where ListObjects' walk would stat them as they vanish) and
// renames them into place under the key's lock (having checked the request's If-Match
// or If-None-Match there first, see patchS3rverConditionalWrites); getObject and
// getMetadata read the metadata files and open the object file under the same lock (an
// open file keeps its old contents when a rename replaces it); copyObject is a locked
// read of the source streamed through putObject.
function patchS3rverAtomicWrites() {
  const crypto = require('crypto');
  const fs = require('fs');
  const path = require('path');
  const { Transform } = require('stream');
  const { pipeline } = require('stream/promises');
  const FilesystemStore = require('s3rver/lib/stores/filesystem');
  const S3Object = require('s3rver/lib/models/object');
  const { pick, pickBy } = require('lodash');
  const proto = FilesystemStore.prototype;
  const readMetadata = proto.getMetadata; // the original, unlocked
  let tempCount = 0;

  function tempPath(store) {
    // not a valid bucket name, so ListBuckets skips it like any other non-directory
    return path.join(store.rootDirectory, `._S3rver_tmp.${process.pid}.${++tempCount}`);
  }

  async function unlinkQuietly(file) {
    await fs.promises.unlink(file).catch(() => {});
  }

  // rename, recreating the key's directory if a concurrent deletion of a sibling key
  // removed it after it was made (deleteObject cleans up empty parent directories)
  async function renameInto(from, to) {
    for (let attempt = 0; ; attempt++) {
      try {
        await fs.promises.rename(from, to);
        return;
      } catch (err) {
        if (err.code !== 'ENOENT' || attempt >= 5) throw err;
        await fs.promises.stat(from); // the temporary file itself missing: give up
        await fs.promises.mkdir(path.dirname(to), { recursive: true });
      }
    }
  }

  // writes object.content and its metadata; returns { size, md5, metadata } where
  // metadata is what getMetadata returns right after the commit
  async function storeObject(store, object) {
    const { bucket, key } = object;
    const condition = writeConditions.getStore(); // the request's, if any
    const objectTemp = tempPath(store);
    const md5Temp = tempPath(store);
    const metadataTemp = tempPath(store);
    try {
      const md5Context = crypto.createHash('md5');
      let size = 0;
      if (Buffer.isBuffer(object.content)) {
        md5Context.update(object.content);
        size = object.content.length;
        await fs.promises.writeFile(objectTemp, object.content, { flag: 'wx' });
      } else {
        await pipeline(
          object.content,
          new Transform({
            transform(chunk, encoding, callback) {
              md5Context.update(chunk, encoding);
              size += chunk.length;
              callback(null, chunk);
            },
          }),
          fs.createWriteStream(objectTemp, { flags: 'wx' }),
        );
      }
      const md5 = md5Context.digest('hex');
      // lib/stores/filesystem.js putMetadata's selection of metadata
      const json = {
        ...pick(object.metadata, S3Object.ALLOWED_METADATA),
        ...pickBy(object.metadata, (value, name) => name.startsWith('x-amz-meta-')),
      };
      await Promise.all([
        fs.promises.writeFile(md5Temp, md5, { flag: 'wx' }),
        fs.promises.writeFile(metadataTemp, JSON.stringify(json, null, 2), { flag: 'wx' }),
      ]);
      const objectPath = store.getResourcePath(bucket, key, 'object');
      await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
      const metadata = await withKeyLock(bucket, key, async () => {
        await checkWriteCondition(condition, bucket, key, () =>
          readMetadata.call(store, bucket, key),
        );
        await renameInto(md5Temp, store.getResourcePath(bucket, key, 'object.md5'));
        await renameInto(metadataTemp, store.getResourcePath(bucket, key, 'metadata.json'));
        await renameInto(objectTemp, objectPath);
        return readMetadata.call(store, bucket, key);
      });
      return { size, md5, metadata };
    } finally {
      await Promise.all([objectTemp, md5Temp, metadataTemp].map(unlinkQuietly));
    }
  }

  proto.putObject = async function putObject(object) {
    const { size, md5 } = await storeObject(this, object);
    return { size, md5 };
  };

  proto.getMetadata = function getMetadata(bucket, key) {
    return withKeyLock(bucket, key, () => readMetadata.call(this, bucket, key));
  };

  // lib/stores/filesystem.js getObject, its metadata read and file opened under the lock
  proto.getObject = async function getObject(bucket, key, options) {
    try {
      return await withKeyLock(bucket, key, async () => {
        const metadata = await readMetadata.call(this, bucket, key);
        const lastByte = Math.max(0, Number(metadata['content-length']) - 1);
        const range = {
          start: (options && options.start) || 0,
          end: Math.min((options && options.end) || Infinity, lastByte),
        };
        const ranged = options && (options.start !== undefined || options.end);
        let content = null;
        if (!(range.start < 0 || Math.min(range.end, lastByte) < range.start)) {
          content = await new Promise((resolve, reject) => {
            const stream = fs
              .createReadStream(this.getResourcePath(bucket, key, 'object'), range)
              .on('error', reject)
              .on('open', () => resolve(stream));
          });
        } // else: the range is not satisfiable
        const object = new S3Object(bucket, key, content, metadata);
        if (ranged) object.range = range;
        return object;
      });
    } catch (err) {
      if (err.code === 'ENOENT') return null;
      throw err;
    }
  };

  // a consistent snapshot of the source (one locked getObject), written like a PutObject
  proto.copyObject = async function copyObject(
    srcBucket,
    srcKey,
    destBucket,
    destKey,
    replacementMetadata,
  ) {
    const source = await this.getObject(srcBucket, srcKey);
    if (!source) {
      const err = new Error(`ENOENT: no such object ${srcBucket}/${srcKey}`);
      err.code = 'ENOENT';
      throw err;
    }
    const metadata = replacementMetadata || source.metadata;
    const object = new S3Object(destBucket, destKey, source.content, metadata);
    return (await storeObject(this, object)).metadata;
  };
}

// s3rver 3.7.1 bug: conditional writes are ignored. S3 (and moto) refuse a PutObject or
// CompleteMultipartUpload with `If-None-Match: *` onto an existing key, and one with
// `If-Match: <etag>` or a DeleteObject with `If-Match: <etag>` when the key's ETag is
// another (412 PreconditionFailed) or the key does not exist (404 NoSuchKey); s3rver
// writes and deletes regardless, so two publishers racing for one key both "win".
// The three controllers now run inside writeConditions (an AsyncLocalStorage) holding
// the request's conditions, and the store checks them where it commits: in
// storeObject (patchS3rverAtomicWrites) and deleteObject (patchS3rverDeleteRace), under
// the key's lock, just before the renames or unlinks. So the check and the write are
// one step for every other writer of the key (each of which commits under that lock:
// PutObject, CopyObject, CompleteMultipartUpload, DeleteObject, DeleteObjects), and no
// lock is held while a body streams in. As on moto: ETags compare without their quotes,
// `If-Match: *` is compared literally (never a wildcard), an If-None-Match other than
// `*` is ignored, If-Match is checked before If-None-Match, and CopyObject's conditions
// are ignored. Unlike moto, which ignores it, CompleteMultipartUpload honours If-Match
// as S3 documents. The error bodies are S3's (and moto's): PreconditionFailed with a
// <Condition>If-Match</Condition> or <Condition>If-None-Match</Condition>, and s3rver's
// own NoSuchKey.
const writeConditions = new (require('async_hooks').AsyncLocalStorage)();

// throws the S3 error when `condition` (a writeConditions store, or undefined) applies
// to bucket/key and does not hold; readMetadata reads the key's metadata without the
// lock (the caller holds it) and fails with ENOENT when there is no object
async function checkWriteCondition(condition, bucket, key, readMetadata) {
  if (!condition || condition.bucket !== bucket || condition.key !== key) return;
  const S3Error = require('s3rver/lib/models/error');
  condition.checked = true;
  let etag = null;
  try {
    etag = (await readMetadata()).etag;
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  const failed = header =>
    new S3Error(
      'PreconditionFailed',
      'At least one of the pre-conditions you specified did not hold',
      { Condition: header },
    );
  const unquoted = value => value.replace(/"/g, '');
  if (condition.ifMatch) {
    if (etag === null) {
      throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
    }
    if (unquoted(condition.ifMatch) !== unquoted(etag)) throw failed('If-Match');
  }
  if (condition.ifNoneMatch === '*' && etag !== null) throw failed('If-None-Match');
}

function patchS3rverConditionalWrites() {
  const S3Error = require('s3rver/lib/models/error');
  // lib/routes.js calls these through the module object, so replacing them here takes
  // effect; they run after s3rver's authentication and bucket checks
  const objectCtrl = require('s3rver/lib/controllers/object');
  const { putObject, completeMultipartUpload, deleteObject } = objectCtrl;

  function conditionOf(ctx, headers) {
    const condition = { bucket: ctx.params.bucket, key: ctx.params.key, checked: false };
    let any = false;
    for (const [header, name] of headers) {
      if (ctx.headers[header]) {
        condition[name] = ctx.headers[header];
        any = true;
      }
    }
    return any ? condition : null;
  }

  const ifMatch = ['if-match', 'ifMatch'];
  const ifNoneMatch = ['if-none-match', 'ifNoneMatch'];
  for (const [name, original] of [
    ['putObject', putObject],
    ['completeMultipartUpload', completeMultipartUpload],
  ]) {
    objectCtrl[name] = function conditionalWrite(ctx) {
      const condition = conditionOf(ctx, [ifMatch, ifNoneMatch]);
      return condition ? writeConditions.run(condition, () => original(ctx)) : original(ctx);
    };
  }

  objectCtrl.deleteObject = async function conditionalDelete(ctx) {
    const condition = conditionOf(ctx, [ifMatch]);
    if (!condition) return deleteObject(ctx);
    await writeConditions.run(condition, () => deleteObject(ctx));
    if (!condition.checked) {
      // the controller found no object, so it neither deleted nor checked anything
      throw new S3Error('NoSuchKey', 'The specified key does not exist.', {
        Key: ctx.params.key,
      });
    }
  };
}

// s3rver 3.7.1 bug: ListObjects with a delimiter leaves out the common prefix of keys
// nested two or more directories below the prefix. lib/stores/filesystem.js
// listObjects walks the bucket's directories and, to skip keys beneath a common prefix,
// does not enter a directory whose path after the prefix contains the delimiter; the
// common prefix is only recorded from an object file the walk meets. So with Prefix
// "a/" and Delimiter "/", the key a/b/LATEST gives "a/b/" (its file is in a/b, which is
// walked), but a/b/versions/000000_LATEST alone gives nothing (a/b/versions is skipped).
// Same listObjects, but a skipped directory adds its common prefix when it holds an
// object key after StartAfter (found by a walk that stops at the first one), and a
// common prefix ends after the whole delimiter, not after its first character.
function patchS3rverNestedCommonPrefixes() {
  const fs = require('fs');
  const path = require('path');
  const { format } = require('util');
  const { zip } = require('lodash');
  const FilesystemStore = require('s3rver/lib/stores/filesystem');
  const S3Object = require('s3rver/lib/models/object');
  const { walk } = require('s3rver/lib/utils');
  const objectSuffix = format('%s._S3rver_%s', '', 'object');

  // the object files under dir, depth first; a directory removed meanwhile (by a
  // concurrent deletion's clean-up) holds none
  function* objectFiles(dir) {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return;
      throw err;
    }
    for (const entry of entries) {
      const filePath = path.posix.join(dir, entry.name);
      if (entry.isDirectory()) yield* objectFiles(filePath);
      else if (entry.name.endsWith(objectSuffix)) yield filePath;
    }
  }

  // lib/stores/filesystem.js listObjects, with the skipped directories' common prefixes
  FilesystemStore.prototype.listObjects = async function listObjects(bucket, options) {
    const { delimiter = '', startAfter = '', prefix = '', maxKeys = Infinity } = options;
    const bucketPath = this.getBucketPath(bucket);

    const delimiterEnc = FilesystemStore.encodeKeyPath(delimiter);
    const startAfterPath = [bucketPath, FilesystemStore.encodeKeyPath(startAfter)].join('/');
    const prefixPath = [bucketPath, FilesystemStore.encodeKeyPath(prefix)].join('/');
    const keyOf = keyPath =>
      FilesystemStore.decodeKeyPath(keyPath.slice(bucketPath.length + 1, -objectSuffix.length));
    const commonPrefixOf = key => {
      const idx = key.slice(prefix.length).indexOf(delimiter);
      return idx === -1 ? null : key.slice(0, prefix.length + idx + delimiter.length);
    };

    const commonPrefixes = new Set();
    const it = walk(bucketPath, dirPath => {
      // avoid directories occurring before the startAfter parameter
      if (dirPath < startAfterPath && startAfterPath.indexOf(dirPath) === -1) {
        return false;
      }
      if (dirPath.startsWith(prefixPath)) {
        if (delimiterEnc && dirPath.slice(prefixPath.length).indexOf(delimiterEnc) !== -1) {
          // avoid directories occurring beneath a common prefix, but list that prefix
          // if they hold a key (every key in them has the same one)
          const dirPrefix = commonPrefixOf(
            FilesystemStore.decodeKeyPath(dirPath.slice(bucketPath.length + 1)),
          );
          if (!commonPrefixes.has(dirPrefix)) {
            for (const keyPath of objectFiles(dirPath)) {
              const key = keyOf(keyPath);
              if (key > startAfter && key.startsWith(prefix)) {
                commonPrefixes.add(commonPrefixOf(key));
                break;
              }
            }
          }
          return false;
        }
      } else if (!prefixPath.startsWith(dirPath)) {
        // avoid directories that do not intersect with any part of the prefix
        return false;
      }
      return true;
    });

    const keys = [];
    let isTruncated = false;
    for (const keyPath of it) {
      if (!keyPath.endsWith(objectSuffix)) {
        continue;
      }

      const key = keyOf(keyPath);

      if (key <= startAfter || !key.startsWith(prefix)) {
        continue;
      }

      if (delimiter) {
        const commonPrefix = commonPrefixOf(key);
        if (commonPrefix !== null) {
          // add to common prefixes before filtering this key out
          commonPrefixes.add(commonPrefix);
          continue;
        }
      }

      if (keys.length < maxKeys) {
        keys.push(key);
      } else {
        isTruncated = true;
        break;
      }
    }

    const metadataArr = await Promise.all(
      keys.map(key =>
        this.getMetadata(bucket, key).catch(err => {
          if (err.code === 'ENOENT') return undefined;
          throw err;
        }),
      ),
    );

    return {
      objects: zip(keys, metadataArr)
        .filter(([, metadata]) => metadata !== undefined)
        .map(([key, metadata]) => new S3Object(bucket, key, null, metadata)),
      commonPrefixes: [...commonPrefixes].sort(),
      isTruncated,
    };
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

// dynalite 4.0.0 bug: index.js handles a request stream error with
// `req.on('error', function (err) { throw err })`, so a client that hangs up inside its
// request body (what the fault tests do, and what a timed-out client does) kills the
// whole server with an uncaught "aborted" ECONNRESET. DynamoDB just drops that request;
// so do we. Any other uncaught error still ends the process.
function survivePeersHangingUp() {
  process.on('uncaughtException', err => {
    if (err && err.code === 'ECONNRESET' && err.message === 'aborted') return;
    console.error(err);
    process.exit(1);
  });
}

if (engine === 'dynalite') {
  survivePeersHangingUp();
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
  patchS3rverAtomicWrites();
  patchS3rverConditionalWrites();
  patchS3rverNestedCommonPrefixes();
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
