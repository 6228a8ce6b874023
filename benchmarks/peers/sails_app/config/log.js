module.exports.log = { level: 'error' };
