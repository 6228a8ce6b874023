// sails-disk, in .tmp/localDiskDb under the app (removed before every start by the orchestrator)
module.exports.datastores = { default: {} };
