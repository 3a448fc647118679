// Google's Node client (@googlemaps/routeoptimization), unchanged, against a routeopt server:
// only the endpoint and the credentials differ.
// Usage:
//   node optimize.js HOST:PORT        insecure gRPC on loopback, no Google auth;
//   node optimize.js HOST:PORT --tls  TLS and the API key of $ROUTEOPT_API_KEY, passed as a
//                                     carrier passes its Google API key ({apiKey}); the server's
//                                     CA from GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (grpc-js reads it)
//                                     when it is not one the machine trusts.
// Prints one JSON line per call with the request and the response as base64 protobuf bytes, for
// the Python test to check with tests/checker.py.
'use strict';

const {grpc} = require('google-gax');
const {RouteOptimizationClient, protos} = require('@googlemaps/routeoptimization');

const v1 = protos.google.maps.routeoptimization.v1;

function request(label, n) {
  const shipments = [];
  for (let i = 0; i < n; i++) {
    shipments.push({
      label: `s${i}`,
      deliveries: [
        {
          arrivalLocation: {latitude: 48.85 + 0.01 * i, longitude: 2.35},
          duration: {seconds: 300},
          timeWindows: [{startTime: {seconds: 0}, endTime: {seconds: 8 * 3600}}],
          label: `drop-${i}`,
        },
      ],
      loadDemands: {kg: {amount: 10}},
    });
  }
  return {
    parent: 'projects/node-test',
    label,
    timeout: {seconds: 3},
    useGeodesicDistances: true,
    model: {
      shipments,
      vehicles: [
        {
          label: 'van',
          startLocation: {latitude: 48.84, longitude: 2.34},
          endLocation: {latitude: 48.84, longitude: 2.34},
          loadLimits: {kg: {maxLoad: 100}},
          costPerKilometer: 1.0,
          costPerHour: 10.0,
        },
      ],
      globalStartTime: {seconds: 0},
      globalEndTime: {seconds: 24 * 3600},
    },
  };
}

function emit(call, req, response) {
  const requestBytes = v1.OptimizeToursRequest.encode(v1.OptimizeToursRequest.fromObject(req)).finish();
  const responseBytes = v1.OptimizeToursResponse.encode(response).finish();
  console.log(
    JSON.stringify({
      call,
      request: Buffer.from(requestBytes).toString('base64'),
      response: Buffer.from(responseBytes).toString('base64'),
    }),
  );
}

async function main() {
  const [host, port] = process.argv[2].split(':');
  const tls = process.argv[3] === '--tls';
  const client = tls
    ? // As on Google's endpoint: TLS and the API key (sent as x-goog-api-key); nothing else.
      new RouteOptimizationClient({
        apiEndpoint: host,
        port: Number(port),
        apiKey: process.env.ROUTEOPT_API_KEY,
      })
    : new RouteOptimizationClient({
        servicePath: host,
        apiEndpoint: host,
        port: Number(port),
        sslCreds: grpc.credentials.createInsecure(),
        // No Google credentials: the API-key client of google-auth-library needs no lookup of
        // application default credentials or of the GCE metadata server.
        apiKey: 'routeopt-test',
      });
  try {
    const syncRequest = request('node-sync', 4);
    const [syncResponse] = await client.optimizeTours(syncRequest);
    emit('optimizeTours', syncRequest, syncResponse);

    const lroRequest = request('node-lro', 5);
    const [operation] = await client.optimizeToursLongRunning(lroRequest);
    if (!operation.name.startsWith('projects/node-test/operations/')) {
      throw new Error(`unexpected operation name ${operation.name}`);
    }
    const [lroResponse] = await operation.promise();
    emit('optimizeToursLongRunning', lroRequest, lroResponse);

    const bad = request('node-bad', 1);
    bad.considerRoadTraffic = true;
    try {
      await client.optimizeTours(bad);
      throw new Error('consider_road_traffic was accepted');
    } catch (err) {
      if (err.code !== grpc.status.INVALID_ARGUMENT || !String(err.details).includes('consider_road_traffic')) {
        throw err;
      }
      console.log(JSON.stringify({call: 'unsupported', code: err.code, details: err.details}));
    }
    if (tls) {
      // A key the server does not know: refused, not served.
      const stranger = new RouteOptimizationClient({
        apiEndpoint: host,
        port: Number(port),
        apiKey: 'ro_0000000000000000_not-a-key',
      });
      try {
        await stranger.optimizeTours(request('node-stranger', 1));
        throw new Error('an unknown API key was accepted');
      } catch (err) {
        if (err.code !== grpc.status.UNAUTHENTICATED) {
          throw err;
        }
        console.log(JSON.stringify({call: 'unknownKey', code: err.code, details: err.details}));
      } finally {
        await stranger.close();
      }
    }
  } finally {
    await client.close();
  }
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
