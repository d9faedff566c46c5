package dynamodb

import (
	"context"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Trimming the logs (see Retention in the package doc). These work on any
// table of the store with a client and nothing else of it.

// dueForTrim reports whether the append counter attr, as an update just
// left it, has reached a multiple of every. Exactly one of several
// concurrent appends sees each multiple, so trims do not pile up, and
// each costs one key-only query of about keep+every keys.
func dueForTrim(updated map[string]types.AttributeValue, attr string, every int) bool {
	n, ok := updated[attr].(*types.AttributeValueMemberN)
	if !ok {
		return false
	}
	count, err := strconv.ParseInt(n.Value, 10, 64)
	return err == nil && count > 0 && count%int64(every) == 0
}

// trim deletes all but the newest keep items of connection name from table,
// newest by range key. A non-nil below limits the log to the range keys
// below it: the runs table holds the roster's items above its runs.
func trim(ctx context.Context, client *dynamodb.Client, table, rangeKey, name string, below types.AttributeValue, keep int) error {
	in := &dynamodb.QueryInput{
		TableName:                 &table,
		KeyConditionExpression:    aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": attrListID, "#key": rangeKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(name)},
		ProjectionExpression:      aws.String("#id, #key"),
		ScanIndexForward:          aws.Bool(false),
	}
	if below != nil {
		in.KeyConditionExpression = aws.String("#id = :id AND #key < :below")
		in.ExpressionAttributeValues[":below"] = below
	}
	keys, err := queryKeys(ctx, client, in)
	if err != nil || len(keys) <= keep {
		return err
	}
	return deleteKeys(ctx, client, table, keys[keep:])
}
