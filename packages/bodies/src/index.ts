export { type BodyStore, bodyPath, type StoredBody } from './body-store.js';
export { FileBodyStore } from './file-body-store.js';
export { BodyReader, lazyBodyStore, openBodyStore } from './open-body-store.js';
export {
  DEFAULT_S3_REGION,
  openS3Client,
  parseS3Uri,
  type S3FailureReason,
  type S3Location,
  S3RequestError,
  s3ClientConfig,
  s3Key,
  s3RequestError,
} from './s3-client.js';
