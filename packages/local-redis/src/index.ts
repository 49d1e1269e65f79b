export { type EnsuredRedis, type EnsureRedisOptions, ensureRedis } from './ensure-redis.js';
export {
  findOnPath,
  freePort,
  type RedisServer,
  type RedisServerOptions,
  redisAnswers,
  startRedisServer,
} from './redis-server.js';
