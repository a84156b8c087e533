// The GraphQL documents the dashboard sends, one per panel, so that a field the server lacks
// costs only the panel that needs it.

export const CATALOGUE = `query Catalogue {
  models(first: 100) {
    nodes { name task defaultVersion { number } versions(first: 100) { nodes { number } } }
  }
}`;

export const MODEL = `query Model($name: String!) {
  model(name: $name) {
    name task description tags
    aliasHistory { alias changedAt changedBy fromVersion { number } toVersion { number } }
    versions(first: 20) {
      nodes {
        number algorithm createdAt aliases
        performance(split: TEST, slice: "overall") { numSamples metrics { name value } }
      }
    }
  }
}`;

export const LIVE_METRICS = `query LiveMetrics($name: String!) {
  model(name: $name) {
    versions(first: 20) {
      nodes { number performance(split: LIVE, slice: "overall") { numSamples metrics { name value } } }
    }
  }
}`;

export const ESTIMATED_METRICS = `query EstimatedMetrics($name: String!) {
  model(name: $name) {
    versions(first: 20) {
      nodes {
        number
        estimatedPerformance {
          available unavailableReason sampleSize
          overall { estimated { name value } }
        }
      }
    }
  }
}`;

export const TRAFFIC_SPLIT = `query TrafficSplit($name: String!) {
  model(name: $name) { trafficSplit { weight version { number } } }
}`;

export const SHADOW = `query Shadow($name: String!) {
  model(name: $name) { shadowSample shadowVersions { number } shadowHistory { versions sample changedAt changedBy } }
}`;

const PAIRED = `paired { metric test pairs baseline candidate difference confidenceLevel confidenceLow confidenceHigh pValue }`;

export const SHADOW_COMPARISON = `query ShadowComparison($name: String!, $version: Int!) {
  compareVersions(model: $name, candidate: {version: $version}, source: SHADOW, sample: 10000) {
    compared skipped agreement meanAbsoluteDifference labelChanges { from to count } ${PAIRED}
  }
}`;

export const ALIAS_BASIS = `query AliasBasis($name: String!) {
  model(name: $name) {
    aliasHistory {
      alias changedAt
      basedOn { source candidate baseline compared skipped agreement meanAbsoluteDifference ${PAIRED} }
    }
  }
}`;

export const LABELS = `query Labels($filter: PredictionFilter) {
  predictionStats(filter: $filter) { count meanLatencyMs p95LatencyMs labelCounts { label count } }
}`;

export const SERIES = `query Series($filter: PredictionFilter, $interval: Interval) {
  predictionStats(filter: $filter) {
    groups(by: [TIME], interval: $interval, first: 100) {
      bucket count meanLatencyMs p95LatencyMs accuracy
    }
  }
}`;

export const ESTIMATED_SERIES = `query EstimatedSeries($name: String!, $since: DateTime, $interval: Interval) {
  model(name: $name) {
    defaultVersion {
      number
      estimatedPerformance(since: $since, interval: $interval) {
        available
        periods { bucket estimated { name value } realised { name value } }
      }
    }
  }
}`;

export const DRIFT = `query Drift($name: String!) {
  model(name: $name) {
    defaultVersion {
      number
      inputDrift {
        referenceAvailable sampleSize
        features { feature method score drifted bins { label reference live } }
        prediction { feature method score drifted bins { label reference live } }
      }
    }
  }
}`;

const PREDICTION = `id createdAt label value confidence latencyMs caller requestId modelVersion { number }`;

const TAIL_PREDICTION = `${PREDICTION} shadows { label value refusal modelVersion { number } }`;

export const TAIL = `query Tail($filter: PredictionFilter) {
  predictions(first: 20, filter: $filter) { nodes { ${TAIL_PREDICTION} } }
}`;

export const TAIL_SUBSCRIPTION = `subscription Tail($filter: PredictionFilter) {
  predictionsCreated(filter: $filter) { ${TAIL_PREDICTION} }
}`;

export const CATALOGUE_SUBSCRIPTION = `subscription CatalogueEvents {
  catalogueEvents { kind model { name } }
}`;
