export { HostPacer, type HostPacerOptions } from './host-pacer.js';
export {
  RobotsCache,
  type RobotsCacheOptions,
  RobotsDisallowedError,
  type RobotsFetch,
  RobotsUnavailableError,
  type RobotsVerdict,
} from './robots-cache.js';
